"""Derived values (a list's totalCount, a doctor's related patients) cached per process
for one write generation, the counter the report cache already keeps in Redis.

Every committed write that stores announce (DataSources' on_change) increments the
generation, in Redis, so every process sees it: the next read looks under the new
generation, misses and recomputes. A value is therefore never served after a write
that could change it has returned. Without Redis (or while the report cache is
bypassed after a failed invalidation) nothing is cached: values are computed directly.

Keys hold the exact filter sent, row scope included, so one caller's count is never
another's.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from datasources.redis.report_cache import ReportCache

T = TypeVar("T")
MAX_ENTRIES = 10_000


class GenerationCache:
    def __init__(self, report_cache: ReportCache, *, max_entries: int = MAX_ENTRIES) -> None:
        self.report_cache = report_cache
        self.max_entries = max_entries
        self._generation: int | None = None
        self._values: OrderedDict[Hashable, asyncio.Future[Any]] = OrderedDict()

    async def get_or_compute(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        generation = await self.report_cache.current_generation()
        if generation is None or (self._generation is not None and generation < self._generation):
            # No Redis, or a read that started before a write this process already saw.
            return await compute()
        if generation != self._generation:
            # A write happened: nothing computed before it may be read again.
            self._values.clear()
            self._generation = generation
        future = self._values.get(key)
        if future is not None:  # pending or succeeded: a failure is removed at once
            self._values.move_to_end(key)
            return await asyncio.shield(future)
        # Concurrent misses for one key compute once, through a shared future.
        future = asyncio.ensure_future(compute())
        self._values[key] = future
        while len(self._values) > self.max_entries:
            self._values.popitem(last=False)
        try:
            return await asyncio.shield(future)
        except BaseException:
            if self._values.get(key) is future:
                del self._values[key]
            raise
