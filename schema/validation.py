"""Checks on client input that the GraphQL types alone cannot express.

Each failure raises BadUserInput naming the field, before anything is written.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TypeVar

from strawberry import Some

from errors import BadUserInput

T = TypeVar("T")

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()\-.]{3,28}[0-9]$")


def text(value: str, field: str, *, max_length: int, min_length: int = 1) -> str:
    cleaned = value.strip()
    if len(cleaned) < min_length:
        raise BadUserInput(f"{field} must not be empty", field=field)
    if len(cleaned) > max_length:
        raise BadUserInput(
            f"{field} must be at most {max_length} characters", field=field, maxLength=max_length
        )
    return cleaned


def optional_text(value: str | None, field: str, *, max_length: int) -> str | None:
    if value is None or not value.strip():
        return None
    return text(value, field, max_length=max_length)


def text_list(values: list[str], field: str, *, max_items: int, max_length: int) -> list[str]:
    if len(values) > max_items:
        raise BadUserInput(f"{field} may hold at most {max_items} items", field=field)
    cleaned = [text(v, field, max_length=max_length) for v in values]
    return list(dict.fromkeys(cleaned))  # drop repeats, keep order


def email(value: str | None, field: str = "email") -> str | None:
    value = optional_text(value, field, max_length=254)
    if value is not None and not _EMAIL.match(value):
        raise BadUserInput(f"{field} is not an email address", field=field)
    return value


def phone(value: str | None, field: str = "phone") -> str | None:
    value = optional_text(value, field, max_length=30)
    if value is not None and not _PHONE.match(value):
        raise BadUserInput(f"{field} is not a phone number", field=field)
    return value


def past_date(value: date, field: str) -> date:
    if value > datetime.now(UTC).date():
        raise BadUserInput(f"{field} must not be in the future", field=field)
    if value.year < 1900:
        raise BadUserInput(f"{field} must not be before 1900", field=field)
    return value


def positive_number(value: float, field: str, *, maximum: float) -> float:
    if not (0 < value <= maximum):
        raise BadUserInput(f"{field} must be greater than 0 and at most {maximum}", field=field)
    return value


def date_range(start: date | None, end: date | None, *, start_field: str, end_field: str) -> None:
    if start is not None and end is not None and end < start:
        raise BadUserInput(f"{end_field} must not be before {start_field}", field=end_field)


def as_utc_midnight(value: date) -> datetime:
    """MongoDB has no date type: calendar dates are stored as midnight UTC."""
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def not_null(value: Some[T | None], field: str) -> T:
    """For partial updates (`strawberry.Maybe` fields): a required field may be left out,
    but not nulled. Its input type stays nullable so that a null arrives here and is
    refused naming the field, as every other bad value is."""
    if value.value is None:
        raise BadUserInput(f"{field} cannot be null", field=field)
    return value.value
