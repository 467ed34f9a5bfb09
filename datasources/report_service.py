"""The reports one caller may run, at the disclosure level their role allows.

Resolvers reach the aggregations (datasources/reports.py) and their cache
(datasources/redis/report_cache.py) only through `Reports`: it decides the caller's
disclosure (auth/privacy.py: administrators see everything, others groups of at least
k), refuses an analyst's period finer than whole days, suppresses the small groups and
caches each result under that disclosure, so no resolver can compute or serve a report
past the caller's level.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from auth.privacy import Disclosure, as_utc, disclosure_for
from auth.roles import Principal
from datasources.caller import require_reader
from datasources.redis.report_cache import CacheOutcome, CacheStats, ReportCache
from datasources.reports import ReportStore

Json = dict[str, Any]


def _iso(moment: datetime | None) -> str | None:
    # In UTC: one period written with different offsets is one cache entry.
    return as_utc(moment).isoformat() if moment else None


class Reports:
    def __init__(
        self,
        store: ReportStore,
        cache: ReportCache,
        principal: Principal | None,
        *,
        min_group_size: int,
    ) -> None:
        self._store, self._cache, self._principal = store, cache, principal
        self._disclosure = disclosure_for(principal, k=min_group_size)
        # Which reports this request served from the cache, for the response's extensions.
        self.outcomes: list[CacheOutcome] = []

    def check_period(self, starts_from: datetime | None, before: datetime | None) -> None:
        """Refuse (BAD_USER_INPUT) bounds finer than this caller's disclosure allows."""
        self._disclosure.check_period(**{"from": starts_from, "before": before})

    async def _serve(
        self, name: str, arguments: Json, compute: Callable[[Disclosure], Awaitable[Json]]
    ) -> Json:
        """Serve `name` from the cache for this caller's disclosure level, or compute it."""
        require_reader(self._principal, "Query", name)
        disclosure = self._disclosure
        cached, outcome = await self._cache.fetch(
            report=name,
            arguments=arguments,
            scope=disclosure.cache_scope,
            compute=lambda: compute(disclosure),
        )
        self.outcomes.append(outcome)
        result: Json = cached  # what `compute` returned, or its cached JSON
        return result

    async def top_doctors(
        self, *, limit: int, starts_from: datetime | None, before: datetime | None
    ) -> Json:
        self.check_period(starts_from, before)

        async def compute(disclosure: Disclosure) -> Json:
            rows = await self._store.doctor_activity(starts_from=starts_from, before=before)
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
        return await self._serve("topDoctors", arguments, compute)

    async def disease_treatment_durations(
        self, *, starts_from: datetime | None, before: datetime | None, open_until: datetime
    ) -> Json:
        self.check_period(starts_from, before)

        async def compute(disclosure: Disclosure) -> Json:
            rows = await self._store.treatment_episodes(
                starts_from=starts_from, before=before, open_until=open_until
            )
            kept, suppressed = disclosure.keep(rows)
            return {"k": disclosure.minimum_group_size, "suppressed": suppressed, "rows": kept}

        arguments = {
            "from": _iso(starts_from),
            "before": _iso(before),
            "openUntil": _iso(open_until),
        }
        return await self._serve("diseaseTreatmentDurations", arguments, compute)

    async def monthly_appointment_trend(self, *, year: int) -> Json:
        async def compute(disclosure: Disclosure) -> Json:
            found = {r["month"]: r for r in await self._store.monthly_appointments(year=year)}
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

        return await self._serve("monthlyAppointmentTrend", {"year": year}, compute)

    async def average_prescription_cost_by_disease(
        self, *, starts_from: datetime | None, before: datetime | None
    ) -> Json:
        self.check_period(starts_from, before)
        store = self._store

        async def compute(disclosure: Disclosure) -> Json:
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
                row: Json = {"disease": disease}
                p, b = prescribed.get(disease), billed.get(disease)
                if p and disclosure.allows(p["patients"]):
                    row.update(
                        prescriptions=p["prescriptions"],
                        prescriptionCents=p["averageCents"],
                        prescribedPatients=p["patients"],
                    )
                if b and disclosure.allows(b["patients"]):
                    row.update(
                        bills=b["bills"],
                        billedCents=b["averageCents"],
                        billedPatients=b["patients"],
                    )
                if len(row) == 1:
                    suppressed += 1
                else:
                    rows.append(row)
            return {"k": disclosure.minimum_group_size, "suppressed": suppressed, "rows": rows}

        arguments = {"from": _iso(starts_from), "before": _iso(before)}
        return await self._serve("averagePrescriptionCostByDisease", arguments, compute)

    async def cache_stats(self) -> CacheStats:
        """The shared cache's counters (administrators: Query.reportCacheStats)."""
        require_reader(self._principal, "Query", "reportCacheStats")
        return await self._cache.shared_stats()
