"""Finished report results cached in Redis (shared by every server process).

Keys carry the report, its normalised arguments, the caller's access scope and the
*generation*: a counter every write that can change a report increments. A read after a
mutation has returned therefore never sees an older result: it looks under the new
generation, misses and recomputes. Old entries are never read again and expire.

Many concurrent misses for one key compute once: in-process through a shared future,
across processes through a short Redis lock that the others wait on. Without Redis the
reports are computed directly and the service keeps answering.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as redis
from redis.exceptions import RedisError

# Named as before the move to datasources/redis/: log filters (and tests) select it.
log = logging.getLogger("datasources.report_cache")
GENERATION_KEY = "report:generation"
STATS_KEY = "report:stats"
LOCK_TTL_MS = 15_000
WAIT_STEP_S = 0.05


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0


@dataclass(frozen=True)
class CacheOutcome:
    report: str
    hit: bool
    # Why the cache was not used at all ("redis unavailable", ...), else None.
    bypassed: str | None = None


def _text(value: bytes | str) -> str:
    # Replies are bytes unless the client decodes them (decode_responses=True).
    return value.decode() if isinstance(value, bytes) else value


@dataclass
class ReportCache:
    client: redis.Redis
    ttl_s: int
    stats: CacheStats = field(default_factory=CacheStats)
    _in_flight: dict[str, asyncio.Future[Any]] = field(default_factory=dict)
    # After a failed invalidation, cached results may be stale: do not read them until
    # every entry written before the failure has expired.
    _bypass_until: float = 0.0

    @staticmethod
    def key(report: str, arguments: dict[str, Any], scope: str, generation: int) -> str:
        digest = hashlib.sha256(orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS))
        return f"report:{report}:{scope}:g{generation}:{digest.hexdigest()[:32]}"

    async def fetch(
        self,
        *,
        report: str,
        arguments: dict[str, Any],
        scope: str,
        compute: Callable[[], Awaitable[Any]],
    ) -> tuple[Any, CacheOutcome]:
        """The report's JSON-ready result, from the cache or freshly computed."""
        if time.monotonic() < self._bypass_until:
            return await compute(), CacheOutcome(report, False, "recent invalidation failed")
        try:
            generation = int(await self.client.get(GENERATION_KEY) or 0)
            key = self.key(report, arguments, scope, generation)
            cached = await self.client.get(key)
        except RedisError:
            log.warning("report cache unavailable; computing %s directly", report, exc_info=True)
            self.stats.errors += 1
            return await compute(), CacheOutcome(report, False, "redis unavailable")
        if cached is not None:
            await self._count("hits")
            return orjson.loads(cached), CacheOutcome(report, True)
        await self._count("misses")
        return await self._compute_once(key, compute), CacheOutcome(report, False)

    async def _compute_once(self, key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        running = self._in_flight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            result = await self._compute_across_processes(key, compute)
            future.set_result(result)
            return result
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning if no one waits
            raise
        finally:
            del self._in_flight[key]

    async def _compute_across_processes(
        self, key: str, compute: Callable[[], Awaitable[Any]]
    ) -> Any:
        lock = f"{key}:lock"
        try:
            leader = await self.client.set(lock, b"1", nx=True, px=LOCK_TTL_MS)
        except RedisError:
            return await compute()
        if not leader:
            # Another process is computing this key: wait for its result, bounded.
            deadline = time.monotonic() + LOCK_TTL_MS / 1000
            while time.monotonic() < deadline:
                await asyncio.sleep(WAIT_STEP_S)
                try:
                    cached = await self.client.get(key)
                    if cached is not None:
                        return orjson.loads(cached)
                    if not await self.client.exists(lock):
                        # The leader stores the result before releasing the lock: read
                        # once more, or we would race it between the two reads above.
                        cached = await self.client.get(key)
                        if cached is not None:
                            return orjson.loads(cached)
                        break  # the other process failed: compute ourselves
                except RedisError:
                    break
            return await compute()
        try:
            result = await compute()
            try:
                await self.client.set(key, orjson.dumps(result), ex=self.ttl_s)
            except RedisError:
                log.warning("could not store report result", exc_info=True)
            return result
        finally:
            try:
                await self.client.delete(lock)
            except RedisError:
                pass

    async def current_generation(self) -> int | None:
        """The write generation, or None when cached values must not be used (Redis
        unavailable, or a recent invalidation failed)."""
        if time.monotonic() < self._bypass_until:
            return None
        try:
            return int(await self.client.get(GENERATION_KEY) or 0)
        except RedisError:
            return None

    async def invalidate(self) -> None:
        """Called after every committed write that can change a report."""
        try:
            await self.client.incr(GENERATION_KEY)
        except RedisError:
            log.error(
                "could not invalidate cached reports; bypassing the cache for %s s",
                self.ttl_s,
                exc_info=True,
            )
            self._bypass_until = time.monotonic() + self.ttl_s

    async def _count(self, outcome: str) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        try:
            await self.client.hincrby(STATS_KEY, outcome, 1)
        except RedisError:
            pass

    async def shared_stats(self) -> CacheStats:
        """Hits and misses of every process (Redis), else this process's own."""
        try:
            raw = await self.client.hgetall(STATS_KEY)
        except RedisError:
            return self.stats
        values = {_text(key): int(value) for key, value in raw.items()}
        return CacheStats(
            hits=values.get("hits", 0), misses=values.get("misses", 0), errors=self.stats.errors
        )
