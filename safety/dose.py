"""Daily dose from dosage × frequency, in milligrams, where that is computable."""

from __future__ import annotations

# Administrations per day for each Frequency; WEEKLY spreads one dose over 7 days so it
# compares with daily maxima (methotrexate 15 mg weekly is about 2.1 mg/day).
PER_DAY: dict[str, float] = {
    "ONCE": 1,
    "ONCE_DAILY": 1,
    "TWICE_DAILY": 2,
    "THREE_TIMES_DAILY": 3,
    "FOUR_TIMES_DAILY": 4,
    "EVERY_4_HOURS": 6,
    "EVERY_6_HOURS": 4,
    "EVERY_8_HOURS": 3,
    "EVERY_12_HOURS": 2,
    "WEEKLY": 1 / 7,
}
TO_MG: dict[str, float] = {"MG": 1.0, "G": 1000.0, "MCG": 0.001}


def daily_dose_mg(value: float | None, unit: str | None, frequency: str | None) -> float | None:
    """None when the dose cannot be expressed per day in mg: an as-needed schedule, or a
    unit (tablet, puff, mL, units) that says nothing about the amount of drug."""
    if value is None or unit not in TO_MG or frequency not in PER_DAY:
        return None
    return value * TO_MG[unit] * PER_DAY[frequency]
