"""Reading a page in windows of its first sort key, so a page costs about its own size.

The embedded server never stops an index scan at a query's limit: it reads every index
candidate, then sorts and limits (../shared/MONGODB_NOTES.md). A page of 6 over a
filter matching 3,000 documents therefore reads 3,000. Bounding the first sort key
(`start` in [lo, lo + width)) makes its index scan read only that window, and the
filter's statistics (how many match, the smallest and largest key; one grouped
aggregation, cached per write generation) size the window to hold about the page.
When a window holds too few rows the next one, four times as wide, follows.

The statistics only size windows; they never decide what a page holds. The first
window is open towards the start of the order and the last one open towards its end,
so a row written since the statistics were taken is still found. mongod is served
from the same compound index either way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from datasources.filters import merge

Document = dict[str, Any]
# Windows are sized to hold this many times the rows a page needs, on average.
SLACK = 1.5
GROWTH = 4
MIN_WIDTH = timedelta(milliseconds=1)


@dataclass(frozen=True)
class KeyStatistics:
    count: int
    lowest: datetime | None
    highest: datetime | None


async def key_statistics(
    collection: AsyncCollection[Document], query: Document, key: str
) -> KeyStatistics:
    pipeline = [
        {"$match": query},
        {
            "$group": {
                "_id": None,
                "n": {"$sum": 1},
                "lo": {"$min": f"${key}"},
                "hi": {"$max": f"${key}"},
            }
        },
    ]
    found = await (await collection.aggregate(pipeline)).to_list()
    if not found:
        return KeyStatistics(0, None, None)
    group = found[0]
    lowest, highest = group.get("lo"), group.get("hi")
    if not isinstance(lowest, datetime) or not isinstance(highest, datetime):
        return KeyStatistics(int(group["n"]), None, None)
    return KeyStatistics(int(group["n"]), lowest, highest)


def windowable(query: Document, key: str) -> bool:
    """Only a plain filter (equalities, and at most a range on the key itself) is
    narrowed by a window; anything else is served as it is."""
    for field, condition in query.items():
        if field.startswith("$"):
            return False
        if isinstance(condition, dict) and field != key:
            return False
    return True


async def windowed_rows(
    find: Callable[[Document, int], Awaitable[list[Document]]],
    query: Document,
    *,
    key: str,
    ascending: bool,
    start: datetime | None,
    statistics: KeyStatistics,
    wanted: int,
    limit: int,
    keep: Callable[[Document], bool],
) -> list[Document]:
    """Up to `wanted` rows of `query` in sort order from `start` (the cursor's key,
    inclusive; None: from the beginning), that `keep` accepts. `find(query, limit)`
    runs one sorted query."""
    if statistics.lowest is None or statistics.highest is None or statistics.count == 0:
        rows = await find(query, limit)
        return [row for row in rows if keep(row)][:wanted]
    span = statistics.highest - statistics.lowest
    width = max(span * min(1.0, SLACK * wanted / statistics.count), MIN_WIDTH)
    edge = statistics.highest if ascending else statistics.lowest
    position = start
    collected: list[Document] = []
    while True:
        origin = position
        if origin is None:
            origin = statistics.lowest if ascending else statistics.highest
        boundary = origin + width if ascending else origin - width
        last = boundary > edge if ascending else boundary < edge
        window: Document = {}
        if position is not None:
            window["$gte" if ascending else "$lte"] = position
        if not last:
            window["$lt" if ascending else "$gt"] = boundary
        windowed = merge(query, {key: window}) if window else query
        window_limit = limit
        while True:
            rows = await find(windowed, window_limit)
            kept = [row for row in rows if keep(row)]
            if len(rows) < window_limit or len(collected) + len(kept) >= wanted:
                break
            # More rows in this window than one query returned, all tied with the
            # cursor: read further into the same window.
            window_limit *= GROWTH
        collected += kept
        if len(collected) >= wanted or last:
            return collected[:wanted]
        position, width = boundary, width * GROWTH
