"""What analysts may see of aggregates: no patient identifiers (reports carry none) and
no group small enough to point at individuals (k-anonymity on distinct patients)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from auth.roles import Principal, Role


@dataclass(frozen=True)
class Disclosure:
    """How much of a report a caller may see: everything, or groups of at least k."""

    minimum_group_size: int | None

    @property
    def cache_scope(self) -> str:
        # Part of the cache key: an analyst must never be served an admin's result.
        return "full" if self.minimum_group_size is None else f"k{self.minimum_group_size}"

    def allows(self, patients: int) -> bool:
        return self.minimum_group_size is None or patients >= self.minimum_group_size

    def keep(self, rows: Iterable[dict[str, Any]], *, count: str = "patients"):
        """Rows large enough to show, and how many were suppressed."""
        kept, suppressed = [], 0
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
