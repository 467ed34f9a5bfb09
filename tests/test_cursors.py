"""Keyset cursors (datasources/pagination.py) as pure functions: they round-trip the sort
key, belong to one list, refuse forgeries with BAD_USER_INPUT, and the filter they make
selects exactly the rows after the cursor in sort order."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, datetime

import bson
import pytest
from bson import ObjectId

from datasources.pagination import (
    PageRequest,
    after_filter,
    build_page,
    decode_cursor,
    encode_cursor,
    sort_key,
)
from errors import BadUserInput

MOMENT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
OID = ObjectId("65f000000000000000000001")


def test_a_cursor_round_trips_its_values_with_their_types():
    cursor = encode_cursor([MOMENT, OID], list_name="appointments")
    assert decode_cursor(cursor, list_name="appointments", types=(datetime, ObjectId)) == [
        MOMENT,
        OID,
    ]
    assert "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL-safe


def test_a_cursor_decodes_datetimes_as_utc():
    [value] = decode_cursor(
        encode_cursor([MOMENT], list_name="x"), list_name="x", types=(datetime,)
    )
    assert value.tzinfo is not None and value.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 at all!",
        base64.urlsafe_b64encode(b"garbage").decode(),
        base64.urlsafe_b64encode(bson.encode({"x": 1})).decode(),  # no key
        base64.urlsafe_b64encode(bson.encode({"l": "patients", "k": "abc"})).decode(),
    ],
)
def test_a_forged_cursor_is_bad_user_input(cursor):
    with pytest.raises(BadUserInput) as refused:
        decode_cursor(cursor, list_name="patients", types=(str,))
    assert refused.value.extensions["field"] == "after"


def test_a_cursor_from_another_list_or_of_other_types_is_refused():
    cursor = encode_cursor(["Ada", OID], list_name="patients")
    with pytest.raises(BadUserInput, match="for this list"):
        decode_cursor(cursor, list_name="doctors", types=(str, ObjectId))
    with pytest.raises(BadUserInput, match="for this list"):
        decode_cursor(cursor, list_name="patients", types=(datetime, ObjectId))
    with pytest.raises(BadUserInput, match="for this list"):
        decode_cursor(cursor, list_name="patients", types=(str,))


def _matches(filter_: dict, row: dict) -> bool:
    """A tiny evaluator for the filters after_filter makes ($or of equalities and one
    $gt/$lt), so the test states what MongoDB would select."""

    def condition(name, expected):
        if isinstance(expected, dict):
            ((op, value),) = expected.items()
            return row[name] > value if op == "$gt" else row[name] < value
        return row[name] == expected

    return any(all(condition(n, e) for n, e in branch.items()) for branch in filter_["$or"])


@pytest.mark.parametrize("directions", list(itertools.product((1, -1), repeat=2)))
def test_after_filter_selects_exactly_the_rows_after_the_cursor(directions):
    sort = [("a", directions[0]), ("_id", directions[1])]
    rows = [{"a": a, "_id": i} for a in range(3) for i in range(3)]

    def order(row):
        return tuple(row[name] * direction for name, direction in sort)

    ordered = sorted(rows, key=order)
    for position, row in enumerate(ordered):
        cursor = encode_cursor(sort_key(row, sort), list_name="t")
        selected = [
            r
            for r in ordered
            if _matches(after_filter(cursor, sort, list_name="t", types=(int, int)), r)
        ]
        assert selected == ordered[position + 1 :]


def test_build_page_uses_the_extra_row_only_to_say_there_is_more():
    request = PageRequest(first=2)
    rows = [{"k": n} for n in range(3)]
    page = build_page(rows, request, key=lambda row: [row["k"]], list_name="t")
    assert page.items == rows[:2] and page.has_next_page
    assert decode_cursor(page.cursors[-1], list_name="t", types=(int,)) == [1]
    last = build_page(rows[:2], request, key=lambda row: [row["k"]], list_name="t")
    assert not last.has_next_page


@pytest.mark.parametrize(("first", "message"), [(-1, "negative"), (501, "at most 500")])
def test_page_requests_outside_the_bounds_are_refused(first, message):
    with pytest.raises(BadUserInput, match=message):
        PageRequest.build(first, None, default=100, maximum=500)


def test_a_page_request_defaults_and_ignores_an_empty_after():
    assert PageRequest.build(None, "", default=100, maximum=500) == PageRequest(first=100)
