"""Prometheus metrics for one process (prometheus-client), served on /metrics.

Series (all prefixed `caregraph_`):
- requests_total{operation, outcome} and request_seconds{operation} (histogram)
- errors_total{code}: every error clients saw, by extensions.code
- db_round_trips{store} (histogram per request: mongodb commands, sql statements)
- dataloader_batch_size (histogram)
- cache_lookups_total{cache, result}: reports and APQ, hit or miss
- login_throttled_total{via}: refused logins, via redis or the in-process fallback
- dependency_up{dependency}: 1 up, 0 down (the circuits)
- mongodb_shed_total, mongodb_restarts_total
- backup_age_seconds, backup_last_success_timestamp_seconds, integrity_alarms_total

Operation names come from clients, so they are capped: names outside GraphQL's name
syntax, and any beyond the first MAX_OPERATION_NAMES, count as "other".
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pymongo import monitoring

REGISTRY = CollectorRegistry(auto_describe=True)
MAX_OPERATION_NAMES = 200
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_known_operations: set[str] = set()

REQUESTS = Counter(
    "caregraph_requests", "GraphQL requests", ["operation", "outcome"], registry=REGISTRY
)
LATENCY = Histogram(
    "caregraph_request_seconds",
    "GraphQL request latency",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
ERRORS = Counter("caregraph_errors", "Errors clients saw", ["code"], registry=REGISTRY)
ROUND_TRIPS = Histogram(
    "caregraph_db_round_trips",
    "Database round trips per request",
    ["store"],
    buckets=(0, 1, 2, 3, 5, 8, 13, 21, 50, 100),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "caregraph_dataloader_batch_size",
    "Keys per dataloader batch",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
    registry=REGISTRY,
)
CACHE = Counter("caregraph_cache_lookups", "Cache lookups", ["cache", "result"], registry=REGISTRY)
THROTTLED = Counter(
    "caregraph_login_throttled", "Logins refused by the throttle", ["via"], registry=REGISTRY
)
DEPENDENCY_UP = Gauge(
    "caregraph_dependency_up", "1 when the dependency is up", ["dependency"], registry=REGISTRY
)
SHED = Counter("caregraph_mongodb_shed", "MongoDB operations shed (gate full)", registry=REGISTRY)
RESTARTS = Counter("caregraph_mongodb_restarts", "Embedded MongoDB restarts", registry=REGISTRY)
BACKUP_LAST_SUCCESS = Gauge(
    "caregraph_backup_last_success_timestamp_seconds",
    "When the last backup succeeded (unix time; 0: never)",
    registry=REGISTRY,
)
BACKUP_AGE = Gauge(
    "caregraph_backup_age_seconds",
    "Seconds since the last successful backup (-1: none yet)",
    registry=REGISTRY,
)
BACKUP_AGE.set_function(
    lambda: (
        time.time() - BACKUP_LAST_SUCCESS._value.get()  # noqa: SLF001
        if BACKUP_LAST_SUCCESS._value.get()  # noqa: SLF001
        else -1.0
    )
)
INTEGRITY_ALARMS = Counter(
    "caregraph_integrity_alarms", "Data-integrity alarms raised", ["check"], registry=REGISTRY
)
# Series that should read 0 rather than be absent until the first event.
for _check in ("backup", "scheduled_backup"):
    INTEGRITY_ALARMS.labels(_check)
THROTTLED.labels("throttle")


_OPERATION_NAME = re.compile(r"^\s*(?:query|mutation|subscription)\s+([A-Za-z_][A-Za-z0-9_]*)")


def operation_name(explicit: str | None, query: str | None) -> str | None:
    """The operation's name: the one the client sent, else the document's first."""
    if explicit:
        return explicit
    match = _OPERATION_NAME.match(query or "")
    return match.group(1) if match else None


def operation_label(name: str | None) -> str:
    if not name:
        return "anonymous"
    if name in _known_operations:
        return name
    if not _NAME.match(name) or len(_known_operations) >= MAX_OPERATION_NAMES:
        return "other"
    _known_operations.add(name)
    return name


@dataclass
class RequestStats:
    request_id: str = ""
    started: float = field(default_factory=time.monotonic)
    operation: str | None = None
    executed: bool = False  # a GraphQL operation ran (not a page or a protocol refusal)
    outcome: str = "ok"
    mongodb: int = 0
    sql: int = 0


_current: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar(
    "caregraph_request_stats", default=None
)


def begin_request(request_id: str = "") -> contextvars.Token[RequestStats | None]:
    return _current.set(RequestStats(request_id=request_id))


def current() -> RequestStats | None:
    return _current.get()


def end_request(token: contextvars.Token[RequestStats | None]) -> None:
    stats = _current.get()
    _current.reset(token)
    if stats is None or not stats.executed and stats.outcome == "ok":
        return  # not a GraphQL operation (the GraphiQL page, say)
    operation = operation_label(stats.operation)
    REQUESTS.labels(operation, stats.outcome).inc()
    LATENCY.labels(operation).observe(time.monotonic() - stats.started)
    ROUND_TRIPS.labels("mongodb").observe(stats.mongodb)
    ROUND_TRIPS.labels("sql").observe(stats.sql)


def count_errors(errors: list[dict[str, Any]]) -> None:
    for error in errors:
        code = (error.get("extensions") or {}).get("code", "UNKNOWN")
        ERRORS.labels(code).inc()
        if code == "RATE_LIMITED":
            THROTTLED.labels("throttle").inc()


class RoundTripCounter(monitoring.CommandListener):
    """Counts MongoDB commands against the request that sent them."""

    _ignored = frozenset({"hello", "isMaster", "ismaster", "ping", "endSessions", "saslStart"})

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        stats = _current.get()
        if stats is not None and event.command_name not in self._ignored:
            stats.mongodb += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def count_sql_statement(*_args: object) -> None:
    stats = _current.get()
    if stats is not None:
        stats.sql += 1


def dependency_changed(name: str, is_up: bool) -> None:
    DEPENDENCY_UP.labels(name).set(1 if is_up else 0)


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


FALLBACK_SPENT = Counter(
    "caregraph_login_throttle_fallback",
    "Login attempts counted by the in-process budget while Redis was down",
    registry=REGISTRY,
)


def observe_operation(
    *,
    operation: str | None,
    by_reference: bool,
    trusted: bool,
    report_hits: list[bool],
    result: Any,
) -> None:
    """One executed GraphQL operation: its name, outcome and cache lookups."""
    stats = _current.get()
    if stats is not None:
        stats.operation, stats.executed = operation, True
        if result.errors:
            stats.outcome = "partial" if result.data else "error"
    if by_reference and not trusted:
        CACHE.labels("apq", "hit").inc()
    for hit in report_hits:
        CACHE.labels("reports", "hit" if hit else "miss").inc()


def observe_refusal(code: str, outcome: str) -> None:
    """A request refused before or instead of GraphQL execution."""
    ERRORS.labels(code).inc()
    if code == "PERSISTED_QUERY_NOT_FOUND":
        CACHE.labels("apq", "miss").inc()
    stats = _current.get()
    if stats is not None:
        stats.outcome = outcome


def observed_batches(
    batch: Callable[[list[Any]], Awaitable[Sequence[Any]]],
) -> Callable[[list[Any]], Awaitable[Sequence[Any]]]:
    """A dataloader batch function that records each batch's size."""

    async def observed(keys: list[Any]) -> Sequence[Any]:
        BATCH_SIZE.observe(len(keys))
        return await batch(keys)

    return observed
