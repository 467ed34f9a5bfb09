from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import strawberry

from datasources.report_service import Reports
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


def reports(info: Info) -> Reports:
    """The caller's reports: disclosure, suppression and caching are decided there."""
    return provided(info.context.reports, "reports")


def _period(starts_from: datetime | None, before: datetime | None) -> None:
    check.date_range(starts_from, before, start_field="from", end_field="before")


async def resolve_top_doctors(
    info: Info, limit: int = 10, starts_from: From = None, before: Before = None
) -> types.TopDoctorsReport | None:
    if not 1 <= limit <= 100:
        raise BadUserInput("limit must be between 1 and 100", field="limit")
    _period(starts_from, before)
    return types.TopDoctorsReport.from_json(
        await reports(info).top_doctors(limit=limit, starts_from=starts_from, before=before)
    )


async def resolve_disease_treatment_durations(
    info: Info, starts_from: From = None, before: Before = None
) -> types.DiseaseDurationsReport | None:
    _period(starts_from, before)
    service = reports(info)
    service.check_period(starts_from, before)
    # An open prescription runs until the end of the period, or the start of the current
    # hour if that is earlier: to the hour, so a cached result serves a whole hour.
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    open_until = min(before, now) if before else now
    return types.DiseaseDurationsReport.from_json(
        await service.disease_treatment_durations(
            starts_from=starts_from, before=before, open_until=open_until
        )
    )


async def resolve_monthly_appointment_trend(
    info: Info, year: int
) -> types.MonthlyTrendReport | None:
    if not 1900 <= year <= 9998:
        raise BadUserInput("year must be between 1900 and 9998", field="year")
    return types.MonthlyTrendReport.from_json(
        await reports(info).monthly_appointment_trend(year=year)
    )


async def resolve_average_prescription_cost_by_disease(
    info: Info, starts_from: From = None, before: Before = None
) -> types.DiseaseCostReport | None:
    _period(starts_from, before)
    return types.DiseaseCostReport.from_json(
        await reports(info).average_prescription_cost_by_disease(
            starts_from=starts_from, before=before
        )
    )


async def resolve_report_cache_stats(info: Info) -> types.ReportCacheStats | None:
    stats = await reports(info).cache_stats()
    return types.ReportCacheStats(hits=stats.hits, misses=stats.misses, errors=stats.errors)
