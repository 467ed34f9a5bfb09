"""What analysts may see of aggregates: no patient identifiers (reports carry none), no
group small enough to point at individuals (k-anonymity on distinct patients), and no
period finer than whole UTC days.

Why whole days: k-anonymity holds per answer, but two answers for periods a few minutes
apart differ by what happened in those minutes, often a single appointment. Periods
that start and end at midnight UTC make the smallest difference two answers can show a
whole day. Finer periods are refused (not rounded), so an analyst always knows exactly
which period an answer covers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from auth.roles import Principal, Role
from errors import BadUserInput

WHOLE_DAYS_RULE = (
    "analysts' report periods are whole UTC days: {field} must be midnight UTC "
    "(for example 2026-03-01T00:00:00Z)"
)


def as_utc(moment: datetime) -> datetime:
    """A naive value is taken as UTC, as MongoDB and the billing tables take it."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def is_utc_midnight(moment: datetime) -> bool:
    at = as_utc(moment)
    return (at.hour, at.minute, at.second, at.microsecond) == (0, 0, 0, 0)


@dataclass(frozen=True)
class Disclosure:
    """How much of a report a caller may see: everything, or groups of at least k."""

    minimum_group_size: int | None

    @property
    def cache_scope(self) -> str:
        # Part of the cache key: an analyst must never be served an admin's result.
        return "full" if self.minimum_group_size is None else f"k{self.minimum_group_size}"

    def check_period(self, **bounds: datetime | None) -> None:
        """Refuse (BAD_USER_INPUT) a period bound finer than a whole UTC day, for
        callers who see k-anonymised reports; administrators may pass any instant."""
        if self.minimum_group_size is None:
            return
        for field, moment in bounds.items():
            if moment is not None and not is_utc_midnight(moment):
                raise BadUserInput(WHOLE_DAYS_RULE.format(field=field), field=field)

    def allows(self, patients: int) -> bool:
        return self.minimum_group_size is None or patients >= self.minimum_group_size

    def keep(
        self, rows: Iterable[dict[str, Any]], *, count: str = "patients"
    ) -> tuple[list[dict[str, Any]], int]:
        """Rows large enough to show, and how many were suppressed."""
        kept: list[dict[str, Any]] = []
        suppressed = 0
        for row in rows:
            if self.allows(row[count]):
                kept.append(row)
            else:
                suppressed += 1
        return kept, suppressed


def disclosure_for(principal: Principal | None, *, k: int) -> Disclosure:
    if principal is not None and principal.effective_role is Role.ADMIN:
        return Disclosure(None)
    return Disclosure(k)
