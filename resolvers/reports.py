from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import strawberry

from auth.privacy import Disclosure, as_utc, disclosure_for
from datasources.reports import ReportStore
from errors import BadUserInput
from resolvers.common import Info, provided
from schema import report as types
from schema import validation as check

WHOLE_DAYS = " Analysts: midnight UTC only (whole days); a finer instant is BAD_USER_INPUT."
From = Annotated[
    datetime | None,
    strawberry.argument(
        name="from",
        description="Inclusive start of the period (none: from the beginning)." + WHOLE_DAYS,
    ),
]
Before = Annotated[
    datetime | None,
    strawberry.argument(
        description="Exclusive end of the period (none: until now and beyond)." + WHOLE_DAYS
    ),
]


def _iso(moment: datetime | None) -> str | None:
    # In UTC: one period written with different offsets is one cache entry.
    return as_utc(moment).isoformat() if moment else None


async def _report(
    info: Info,
    name: str,
    arguments: dict[str, Any],
    compute: Callable[[Disclosure], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Serve `name` from the cache for this caller's disclosure level, or compute it."""
    context = info.context
    disclosure = disclosure_for(context.principal, k=context.settings.report_min_group_size)
    cached, outcome = await provided(context.report_cache, "report cache").fetch(
        report=name,
        arguments=arguments,
        scope=disclosure.cache_scope,
        compute=lambda: compute(disclosure),
    )
    context.report_outcomes.append(outcome)
    result: dict[str, Any] = cached  # what `compute` returned, or its cached JSON
    return result


def reports(info: Info) -> ReportStore:
    return provided(info.context.reports, "report store")


def _period(info: Info, starts_from: datetime | None, before: datetime | None) -> None:
    check.date_range(starts_from, before, start_field="from", end_field="before")
    disclosure = disclosure_for(
        info.context.principal, k=info.context.settings.report_min_group_size
    )
    disclosure.check_period(**{"from": starts_from, "before": before})


async def resolve_top_doctors(
    info: Info, limit: int = 10, starts_from: From = None, before: Before = None
) -> types.TopDoctorsReport | None:
    if not 1 <= limit <= 100:
        raise BadUserInput("limit must be between 1 and 100", field="limit")
    _period(info, starts_from, before)

    async def compute(disclosure: Disclosure) -> dict[str, Any]:
        rows = await reports(info).doctor_activity(starts_from=starts_from, before=before)
        kept, suppressed = disclosure.keep(rows)
        return {
            "k": disclosure.minimum_group_size,
            "suppressed": suppressed,
            "rows": [
                {
                    "rank": rank,
                    "doctorId": str(r["_id"]),
                    "specialty": r["doctor"]["specialty"],
                    "doctorName": f"{r['doctor']['givenName']} {r['doctor']['familyName']}",
                    "patients": r["patients"],
                    "appointments": r["appointments"],
                }
                for rank, r in enumerate(kept[:limit], start=1)
            ],
        }

    arguments = {"limit": limit, "from": _iso(starts_from), "before": _iso(before)}
    return types.TopDoctorsReport.from_json(await _report(info, "topDoctors", arguments, compute))


async def resolve_disease_treatment_durations(
    info: Info, starts_from: From = None, before: Before = None
) -> types.DiseaseDurationsReport | None:
    _period(info, starts_from, before)
    # An open prescription runs until the end of the period, or the start of the current
    # hour if that is earlier: to the hour, so a cached result serves a whole hour.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    open_until = min(before, now) if before else now

    async def compute(disclosure: Disclosure) -> dict[str, Any]:
        rows = await reports(info).treatment_episodes(
            starts_from=starts_from, before=before, open_until=open_until
        )
        kept, suppressed = disclosure.keep(rows)
        return {"k": disclosure.minimum_group_size, "suppressed": suppressed, "rows": kept}

    arguments = {"from": _iso(starts_from), "before": _iso(before), "openUntil": _iso(open_until)}
    return types.DiseaseDurationsReport.from_json(
        await _report(info, "diseaseTreatmentDurations", arguments, compute)
    )


async def resolve_monthly_appointment_trend(
    info: Info, year: int
) -> types.MonthlyTrendReport | None:
    if not 1900 <= year <= 9998:
        raise BadUserInput("year must be between 1900 and 9998", field="year")

    async def compute(disclosure: Disclosure) -> dict[str, Any]:
        found = {r["month"]: r for r in await reports(info).monthly_appointments(year=year)}
        rows, suppressed = [], 0
        for month in range(1, 13):
            row = found.get(
                month,
                {"month": month, "scheduled": 0, "completed": 0, "cancelled": 0, "patients": 0},
            )
            # An empty month identifies no one; a month with 1..k-1 patients could.
            if row["patients"] and not disclosure.allows(row["patients"]):
                row = {"month": month, "suppressed": True}
                suppressed += 1
            rows.append(row)
        return {
            "k": disclosure.minimum_group_size,
            "suppressed": suppressed,
            "year": year,
            "rows": rows,
        }

    return types.MonthlyTrendReport.from_json(
        await _report(info, "monthlyAppointmentTrend", {"year": year}, compute)
    )


async def resolve_average_prescription_cost_by_disease(
    info: Info, starts_from: From = None, before: Before = None
) -> types.DiseaseCostReport | None:
    _period(info, starts_from, before)

    async def compute(disclosure: Disclosure) -> dict[str, Any]:
        store = reports(info)
        prescribed = {
            r["disease"]: r
            for r in await store.prescription_costs(starts_from=starts_from, before=before)
        }
        billed = {
            r["disease"]: r
            for r in await store.billed_totals(starts_from=starts_from, before=before)
        }
        rows, suppressed = [], 0
        for disease in sorted(prescribed.keys() | billed.keys()):
            row: dict[str, Any] = {"disease": disease}
            p, b = prescribed.get(disease), billed.get(disease)
            if p and disclosure.allows(p["patients"]):
                row.update(
                    prescriptions=p["prescriptions"],
                    prescriptionCents=p["averageCents"],
                    prescribedPatients=p["patients"],
                )
            if b and disclosure.allows(b["patients"]):
                row.update(
                    bills=b["bills"], billedCents=b["averageCents"], billedPatients=b["patients"]
                )
            if len(row) == 1:
                suppressed += 1
            else:
                rows.append(row)
        return {"k": disclosure.minimum_group_size, "suppressed": suppressed, "rows": rows}

    arguments = {"from": _iso(starts_from), "before": _iso(before)}
    return types.DiseaseCostReport.from_json(
        await _report(info, "averagePrescriptionCostByDisease", arguments, compute)
    )


async def resolve_report_cache_stats(info: Info) -> types.ReportCacheStats | None:
    stats = await provided(info.context.report_cache, "report cache").shared_stats()
    return types.ReportCacheStats(hits=stats.hits, misses=stats.misses, errors=stats.errors)
