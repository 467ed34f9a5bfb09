"""Keyset (cursor) pagination shared by every list.

A cursor is the opaque, URL-safe encoding of the sort key of the last item seen, so
pages stay stable while rows are inserted and a page costs one indexed range scan.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import bson
from bson.errors import BSONError

from errors import BadUserInput

T = TypeVar("T")

SortSpec = Sequence[tuple[str, int]]  # (field, 1 ascending | -1 descending)


@dataclass(frozen=True)
class PageRequest:
    first: int
    after: str | None = None

    @classmethod
    def build(cls, first: int | None, after: str | None, *, default: int, maximum: int):
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


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(bson.encode({"k": list(values)})).decode().rstrip("=")


def decode_cursor(cursor: str, *, length: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = bson.decode(base64.urlsafe_b64decode(padded.encode()))["k"]
    except (BSONError, binascii.Error, ValueError, KeyError, TypeError, IndexError):
        raise BadUserInput("after is not a valid cursor", field="after") from None
    if not isinstance(values, list) or len(values) != length:
        raise BadUserInput("after is not a valid cursor for this list", field="after")
    return values


def sort_key(document: dict[str, Any], sort: SortSpec) -> list[Any]:
    return [document.get(name) for name, _ in sort]


def after_filter(cursor: str, sort: SortSpec) -> dict[str, Any]:
    """Mongo filter for rows strictly after the cursor in `sort` order."""
    values = decode_cursor(cursor, length=len(sort))
    branches = []
    for i, (name, direction) in enumerate(sort):
        branch = {sort[j][0]: values[j] for j in range(i)}
        branch[name] = {"$gt" if direction == 1 else "$lt": values[i]}
        branches.append(branch)
    return {"$or": branches}


def build_page(rows: list[T], request: PageRequest, key: Callable[[T], list[Any]]) -> Page[T]:
    """`rows` holds up to first + 1 rows: the extra one only says another page exists."""
    items = rows[: request.first]
    return Page(
        items=items,
        cursors=[encode_cursor(key(row)) for row in items],
        has_next_page=len(rows) > request.first,
    )
