"""Keyset (cursor) pagination shared by every list.

A cursor is the opaque, URL-safe encoding of the sort key of the last item seen, so
pages stay stable while rows are inserted and a page costs one indexed range scan.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Generic, TypeVar

import bson
from bson.codec_options import CodecOptions
from bson.errors import BSONError

from errors import BadUserInput

T = TypeVar("T")

SortSpec = Sequence[tuple[str, int]]  # (field, 1 ascending | -1 descending)


@dataclass(frozen=True)
class PageRequest:
    first: int
    after: str | None = None

    @classmethod
    def build(
        cls, first: int | None, after: str | None, *, default: int, maximum: int
    ) -> PageRequest:
        size = default if first is None else first
        if size < 0:
            raise BadUserInput("first must not be negative", field="first")
        if size > maximum:
            raise BadUserInput(f"first must be at most {maximum}", field="first", maximum=maximum)
        return cls(first=size, after=after or None)


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    cursors: list[str]
    has_next_page: bool


# Cursors hold datetimes: decode them as UTC, never as the server's local time.
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)


def encode_cursor(values: Sequence[Any], *, list_name: str) -> str:
    document = {"l": list_name, "k": list(values)}
    return base64.urlsafe_b64encode(bson.encode(document)).decode().rstrip("=")


def decode_cursor(cursor: str, *, list_name: str, types: Sequence[type]) -> list[Any]:
    """The sort-key values in a cursor made by `list_name`, each of the expected type.

    A cursor from another list (or a forged one) is refused rather than silently
    producing a wrong page.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        document = bson.decode(base64.urlsafe_b64decode(padded.encode()), codec_options=_CODEC)
        values = document["k"]
    except (BSONError, binascii.Error, ValueError, KeyError, TypeError, IndexError):
        raise BadUserInput("after is not a valid cursor", field="after") from None
    if (
        document.get("l") != list_name
        or not isinstance(values, list)
        or len(values) != len(types)
        or not all(isinstance(v, t) for v, t in zip(values, types, strict=True))
    ):
        raise BadUserInput("after is not a valid cursor for this list", field="after")
    return values


def sort_key(document: dict[str, Any], sort: SortSpec) -> list[Any]:
    return [document.get(name) for name, _ in sort]


def after_filter(
    cursor: str, sort: SortSpec, *, list_name: str, types: Sequence[type]
) -> dict[str, Any]:
    """Mongo filter for rows strictly after the cursor in `sort` order."""
    values = decode_cursor(cursor, list_name=list_name, types=types)
    branches = []
    for i, (name, direction) in enumerate(sort):
        branch = {sort[j][0]: values[j] for j in range(i)}
        branch[name] = {"$gt" if direction == 1 else "$lt": values[i]}
        branches.append(branch)
    return {"$or": branches}


def after_bound(
    cursor: str, sort: SortSpec, *, list_name: str, types: Sequence[type]
) -> tuple[dict[str, Any], Callable[[dict[str, Any]], bool]]:
    """The flat, index-friendly form of `after_filter`: a bound on the first sort key
    (`start >= v`, one range condition the planner serves from the list's compound
    index) and a test that drops the rows the bound lets through at or before the
    cursor (ties on the first key). `$or` branches would hide the bound from the
    embedded server's planner and scan the whole collection.
    """
    values = decode_cursor(cursor, list_name=list_name, types=types)
    first_field, first_direction = sort[0]
    bound = {first_field: {"$gte" if first_direction == 1 else "$lte": values[0]}}
    directions = [direction for _, direction in sort]

    def is_after(document: dict[str, Any]) -> bool:
        for (name, _), direction, value in zip(sort, directions, values, strict=True):
            own = document.get(name)
            if own == value:
                continue
            return bool(own > value) if direction == 1 else bool(own < value)
        return False  # the cursor's own row

    return bound, is_after


def build_page(
    rows: list[T], request: PageRequest, key: Callable[[T], list[Any]], *, list_name: str
) -> Page[T]:
    """`rows` holds up to first + 1 rows: the extra one only says another page exists."""
    items = rows[: request.first]
    return Page(
        items=items,
        cursors=[encode_cursor(key(row), list_name=list_name) for row in items],
        has_next_page=len(rows) > request.first,
    )
