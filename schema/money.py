"""Money crosses the API as Decimal (a string in JSON) and is stored as integer cents,
so no amount is ever rounded by binary floating point."""

from __future__ import annotations

from decimal import Decimal

from errors import BadUserInput

MAX_MONEY = Decimal("1000000")
CENT = Decimal("0.01")


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(CENT)


def money_cents(value: Decimal, field: str) -> int:
    if not value.is_finite():
        raise BadUserInput(f"{field} must be a number", field=field)
    if value < 0:
        raise BadUserInput(f"{field} must not be negative", field=field)
    if value > MAX_MONEY:
        raise BadUserInput(f"{field} must be at most {MAX_MONEY}", field=field)
    if value != value.quantize(Decimal("0.01")):
        raise BadUserInput(f"{field} must have at most two decimal places", field=field)
    return int(value * 100)
