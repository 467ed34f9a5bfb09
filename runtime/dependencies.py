"""Dependency states: a small circuit per dependency (up, or down since T).

Failures seen by requests and a background probe update the circuits; while one is
down, requests that need it fail fast with HTTP 503 `SERVICE_UNAVAILABLE`, the
dependency named and a `Retry-After`, instead of each waiting out a server-selection
or connect timeout. Only the probe closes a circuit again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import ConnectionFailure, PyMongoError, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SqlPoolTimeout

from errors import CareGraphError, HttpError

log = logging.getLogger("caregraph.dependencies")

MONGODB, SQL, REDIS = "mongodb", "sql", "redis"
DEPENDENCIES = (MONGODB, SQL, REDIS)
# How long a client should wait before retrying a request refused for a down dependency.
RETRY_AFTER_S = 2


class ServiceUnavailable(CareGraphError):
    """A dependency is down or overloaded: retry later (this is not a bug)."""

    code = "SERVICE_UNAVAILABLE"

    def __init__(self, dependency: str, reason: str = "down") -> None:
        super().__init__(
            f"{dependency} is unavailable ({reason}); retry later",
            dependency=dependency,
            retryAfter=RETRY_AFTER_S,
        )
        self.dependency = dependency


class DependencyDown(HttpError):
    """The whole request is refused (HTTP 503) because a dependency it needs is down."""

    def __init__(self, dependency: str, reason: str = "down") -> None:
        super().__init__(
            503,
            f"{dependency} is unavailable ({reason}); retry later",
            code="SERVICE_UNAVAILABLE",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
        self.dependency = dependency

    def body(self) -> dict[str, Any]:
        extensions = {"code": self.code, "dependency": self.dependency, "retryAfter": RETRY_AFTER_S}
        return {"errors": [{"message": self.message, "extensions": extensions}]}


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _raised_inside(error: BaseException, *packages: str) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return any(f"/{package}/" in frame.filename for frame in frames for package in packages)


def dependency_of(error: BaseException) -> str | None:
    """Which dependency `error` says is unreachable or overloaded, if any.

    Business errors (a duplicate key, a bad query) are not outages: only connection
    failures, timeouts and refusals count.
    """
    for cause in _causes(error):
        if isinstance(cause, ServiceUnavailable | DependencyDown):
            return cause.dependency
        if isinstance(cause, ConnectionFailure):
            return MONGODB
        if isinstance(cause, PyMongoError) and cause.timeout:
            return MONGODB
        if isinstance(cause, RedisConnectionError | RedisTimeoutError):
            return REDIS
        if isinstance(cause, OperationalError | InterfaceError | SqlPoolTimeout):
            return SQL
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return SQL
        if isinstance(cause, OSError | TimeoutError) and _raised_inside(
            cause, "asyncpg", "sqlalchemy", "aiosqlite"
        ):
            return SQL
    return None


@dataclass
class Circuit:
    """up, or down since `down_since` (monotonic seconds)."""

    name: str
    down_since: float | None = None
    reason: str = ""
    # Listeners get (name, is_up) on every change (metrics, logs).
    listeners: list[Callable[[str, bool], None]] = field(default_factory=list)

    @property
    def is_up(self) -> bool:
        return self.down_since is None

    def opened(self, reason: str) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.reason = reason
            log.error("dependency %s is down: %s", self.name, reason)
            self._notify()

    def closed(self) -> None:
        if self.down_since is not None:
            log.warning(
                "dependency %s is up again after %.1f s",
                self.name,
                time.monotonic() - self.down_since,
            )
            self.down_since = None
            self.reason = ""
            self._notify()

    def _notify(self) -> None:
        for listener in self.listeners:
            listener(self.name, self.is_up)

    def refuse_if_down(self) -> None:
        """Fail fast: raise DependencyDown while the circuit is open."""
        if self.down_since is not None:
            raise DependencyDown(self.name)


Probe = Callable[[], Awaitable[object]]


class DependencyStates:
    """The circuits of one process and the background probe that closes them."""

    def __init__(
        self,
        probes: dict[str, Probe],
        *,
        probe_timeout_s: float = 0.8,
        interval_up_s: float = 5.0,
        interval_down_s: float = 0.5,
    ) -> None:
        self.probes = probes
        self.circuits = {name: Circuit(name) for name in probes}
        self.probe_timeout_s = probe_timeout_s
        self.interval_up_s, self.interval_down_s = interval_up_s, interval_down_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __getitem__(self, name: str) -> Circuit:
        return self.circuits[name]

    def add_listener(self, listener: Callable[[str, bool], None]) -> None:
        for circuit in self.circuits.values():
            circuit.listeners.append(listener)

    def report_failure(self, error: BaseException) -> str | None:
        """A request saw `error`: open the circuit on a connection failure, and probe
        now either way (a timeout alone may be one slow query, not an outage)."""
        name = dependency_of(error)
        if name is None or name not in self.circuits:
            return name
        if not isinstance(error, ServiceUnavailable | DependencyDown) and not _is_timeout(error):
            self.circuits[name].opened(f"{type(error).__name__}")
        self._wake.set()
        return name

    def mark_down(self, name: str, reason: str) -> None:
        """Open a circuit from any thread (the MongoDB supervisor's), and probe soon."""
        self.circuits[name].opened(reason)
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def check(self, name: str) -> str:
        """Run one probe with a short timeout: 'ok' or why not. Updates the circuit."""
        try:
            await asyncio.wait_for(self.probes[name](), timeout=self.probe_timeout_s)
        except Exception as error:  # noqa: BLE001 - any failure means "not up"
            reason = "timeout" if isinstance(error, TimeoutError) else type(error).__name__
            self.circuits[name].opened(reason)
            return reason
        self.circuits[name].closed()
        return "ok"

    async def check_all(self) -> dict[str, str]:
        names = list(self.probes)
        results = await asyncio.gather(*(self.check(name) for name in names))
        return dict(zip(names, results, strict=True))

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="dependency-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            any_down = any(not c.is_up for c in self.circuits.values())
            interval = self.interval_down_s if any_down else self.interval_up_s
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.check_all()


def _is_timeout(error: BaseException) -> bool:
    for cause in _causes(error):
        if isinstance(cause, ServerSelectionTimeoutError):
            return False  # no server at all: that is an outage, not a slow query
        if isinstance(cause, PyMongoError) and cause.timeout:
            return True
        if isinstance(cause, RedisTimeoutError | TimeoutError | SqlPoolTimeout):
            return True
    return False
