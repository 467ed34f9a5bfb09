"""Windowed page reads give exactly the rows an unwindowed sorted query gives."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from datasources.windows import KeyStatistics, windowable, windowed_rows

BASE = datetime(2026, 1, 1, tzinfo=UTC)


def _matches(row: dict[str, Any], condition: Any) -> bool:
    value = row["start"]
    checks = {
        "$gte": lambda b: value >= b,
        "$gt": lambda b: value > b,
        "$lt": lambda b: value < b,
        "$lte": lambda b: value <= b,
    }
    return all(checks[op](bound) for op, bound in condition.items())


def _store(rows: list[dict[str, Any]], ascending: bool, queries: list[dict[str, Any]]):
    ordered = sorted(rows, key=lambda r: (r["start"], r["_id"]), reverse=not ascending)

    async def find(query: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        queries.append(query)
        condition = query.get("start", {})
        return [row for row in ordered if _matches(row, condition)][:limit]

    return ordered, find


@pytest.mark.parametrize("ascending", [True, False])
@pytest.mark.parametrize("seed", range(25))
async def test_windowed_pages_equal_the_sorted_rows(ascending: bool, seed: int):
    rng = random.Random(seed)
    # Clustered keys with many ties (prescriptions start at midnight).
    rows: list[dict[str, Any]] = [
        {"_id": i, "start": BASE + timedelta(days=rng.choice([0, 0, 1, 5, 40, 41, 300]))}
        for i in range(rng.randint(0, 120))
    ]
    queries: list[dict[str, Any]] = []
    ordered, find = _store(rows, ascending, queries)
    keys = [row["start"] for row in rows]
    statistics = KeyStatistics(len(rows), min(keys, default=None), max(keys, default=None))
    wanted = rng.randint(1, 12)
    cursor_index = rng.randint(-1, len(ordered) - 1) if ordered else -1
    if cursor_index >= 0:
        cursor = ordered[cursor_index]
        position = ordered.index(cursor)

        def keep(row: dict[str, Any]) -> bool:
            return ordered.index(row) > position

        start = cursor["start"]
        expected = ordered[position + 1 : position + 1 + wanted]
    else:

        def keep(row: dict[str, Any]) -> bool:
            return True

        start = None
        expected = ordered[:wanted]
    got = await windowed_rows(
        find,
        {},
        key="start",
        ascending=ascending,
        start=start,
        statistics=statistics,
        wanted=wanted,
        limit=wanted + 4,
        keep=keep,
    )
    assert got == expected
    assert len(queries) <= 12


async def test_rows_written_after_the_statistics_are_still_found():
    rows = [{"_id": i, "start": BASE + timedelta(days=i)} for i in range(10)]
    queries: list[dict[str, Any]] = []
    ordered, find = _store(rows, True, queries)
    stale = KeyStatistics(3, BASE + timedelta(days=2), BASE + timedelta(days=4))
    got = await windowed_rows(
        find,
        {},
        key="start",
        ascending=True,
        start=None,
        statistics=stale,
        wanted=10,
        limit=10,
        keep=lambda row: True,
    )
    assert got == ordered


def test_only_plain_filters_are_windowed():
    assert windowable({"doctorId": 1, "status": "X", "start": {"$gte": BASE}}, "start")
    assert not windowable({"patientId": {"$in": [1, 2]}}, "start")
    assert not windowable({"$and": [{"a": 1}]}, "start")
