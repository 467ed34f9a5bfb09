"""Public ids are the 24-hex-digit form of MongoDB ObjectIds."""

from __future__ import annotations

from bson import ObjectId
from bson.errors import InvalidId

from errors import BadUserInput


def parse_id(value: str, *, field: str = "id") -> ObjectId:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise BadUserInput(f"{field} {value!r} is not a valid id", field=field) from None


def parse_ids(values: list[str], *, field: str = "id") -> list[ObjectId]:
    return [parse_id(value, field=field) for value in values]
