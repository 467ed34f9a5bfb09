"""A bound on MongoDB concurrency, per process and per request, in front of the pool.

Measured (MONGODB_NOTES.md #10): a burst of slow queries that took every pooled
connection left later requests parked in PyMongo's server selection and the client
never recovered. Here every connection checkout first takes a slot from a process-wide
semaphore sized below `maxPoolSize`, and from the request's own semaphore (so one
request with many aliases cannot take the whole process's share). A checkout that
cannot get its slot quickly is shed with `SERVICE_UNAVAILABLE` instead of queueing.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

from pymongo import AsyncMongoClient

from observability import metrics
from runtime.dependencies import MONGODB, ServiceUnavailable

_request_slots: contextvars.ContextVar[asyncio.Semaphore | None] = contextvars.ContextVar(
    "caregraph_mongo_request_slots", default=None
)


class MongoGate:
    def __init__(self, *, per_process: int, per_request: int, wait_s: float) -> None:
        self.per_process, self.per_request, self.wait_s = per_process, per_request, wait_s
        self.process_slots = asyncio.Semaphore(per_process)
        self.shed = 0  # how many checkouts were refused (metrics read it)

    @asynccontextmanager
    async def request_scope(self) -> AsyncIterator[None]:
        """Within this block (and tasks it starts) a request's own bound applies."""
        token = _request_slots.set(asyncio.Semaphore(self.per_request))
        try:
            yield
        finally:
            _request_slots.reset(token)

    async def _take(self, semaphore: asyncio.Semaphore) -> None:
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=self.wait_s)
        except TimeoutError:
            self.shed += 1
            metrics.SHED.inc()
            raise ServiceUnavailable(MONGODB, "overloaded") from None

    async def acquire(self) -> list[asyncio.Semaphore]:
        taken: list[asyncio.Semaphore] = []
        request = _request_slots.get()
        try:
            for semaphore in (request, self.process_slots):
                if semaphore is not None:
                    await self._take(semaphore)
                    taken.append(semaphore)
        except BaseException:
            for semaphore in taken:
                semaphore.release()
            raise
        return taken

    @property
    def in_use(self) -> int:
        return self.per_process - self.process_slots._value


class _GatedCheckout:
    """Wraps PyMongo's checkout context manager: slots first, then the pool."""

    def __init__(self, gate: MongoGate, inner: Any) -> None:
        self.gate, self.inner = gate, inner
        self.taken: list[asyncio.Semaphore] = []

    async def __aenter__(self) -> Any:
        self.taken = await self.gate.acquire()
        try:
            return await self.inner.__aenter__()
        except BaseException:
            self._release()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        try:
            return await self.inner.__aexit__(exc_type, exc, tb)
        finally:
            self._release()

    def _release(self) -> None:
        for semaphore in self.taken:
            semaphore.release()
        self.taken = []


class GatedMongoClient(AsyncMongoClient[dict[str, Any]]):
    """AsyncMongoClient whose every connection checkout passes the MongoGate.

    `_checkout` (writes, commands, getMore) and `_conn_from_server` (reads) are where
    PyMongo takes a pooled connection for an operation, so gating them bounds them all.
    """

    gate: MongoGate | None = None

    def _gated(self, inner: Any) -> Any:
        return inner if self.gate is None else _GatedCheckout(self.gate, inner)

    def _checkout(self, server: Any, session: Any) -> Any:
        return self._gated(super()._checkout(server, session))

    def _conn_from_server(self, read_preference: Any, server: Any, session: Any) -> Any:
        return self._gated(super()._conn_from_server(read_preference, server, session))
