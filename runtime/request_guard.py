"""What every GraphQL request runs inside: its time budget, its MongoDB bound, and the
translation of dependency failures into fast, specific 503 answers.

- The budget is a PyMongo `timeout()` block: every MongoDB call the request makes
  (transaction retries included, datasources/transactions.py) shares one deadline.
- A request that needs a dependency whose circuit is open is refused at once.
- Errors a request saw from a dependency update its circuit; when the whole answer is
  lost to them (no data, or every root field null with an error), the response is HTTP
  503 with `Retry-After`; when only part of it is (say, billing fields), the rest is
  served (200) with those errors marked `SERVICE_UNAVAILABLE`, and `Retry-After` is
  still set.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pymongo
from starlette.types import Scope

from errors import CareGraphError
from observability import metrics
from observability.logs import log_access
from runtime.dependencies import RETRY_AFTER_S, DependencyDown, dependency_of

if TYPE_CHECKING:
    from runtime.services import Services
    from settings import Settings

# Monotonic deadline of the request being served (None: no request, e.g. a CLI job).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "caregraph_request_deadline", default=None
)


def remaining_s(default: float) -> float:
    """Seconds left in the current request's budget (`default` outside a request)."""
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, deadline - time.monotonic())


def request_budget_s(settings: Settings) -> float:
    return (settings.ops.request_budget_ms or settings.mongodb_timeout_ms) / 1000


@asynccontextmanager
async def request_guard(services: Services, scope: Scope) -> AsyncIterator[None]:
    budget_s = request_budget_s(services.settings)
    token = _deadline.set(time.monotonic() + budget_s)
    stats_token = metrics.begin_request(scope["state"]["request_id"])
    gate = getattr(services.mongo_client, "gate", None)
    try:
        with pymongo.timeout(budget_s):
            if gate is None:
                yield
            else:
                async with gate.request_scope():
                    yield
    except DependencyDown:
        raise
    except Exception as error:
        name = report(services, error)
        if name is None:
            raise
        raise DependencyDown(name) from error
    finally:
        stats = metrics.current()
        if stats is not None:
            log_access(scope["method"], scope["path"], time.monotonic() - stats.started)
        metrics.end_request(stats_token)
        _deadline.reset(token)


def report(services: Services, error: BaseException) -> str | None:
    if services.dependencies is None:
        return dependency_of(error)
    return services.dependencies.report_failure(error)


def refuse_if_down(services: Services, name: str) -> None:
    if services.dependencies is not None:
        services.dependencies[name].refuse_if_down()


def mark_unavailable(services: Services, result: Any, headers: Any) -> bool:
    """Report dependency errors in `result` and set Retry-After; True when the whole
    answer was lost to them (the caller answers 503)."""
    lost_roots: set[object] = set()
    for error in result.errors or []:
        original = getattr(error, "original_error", None)
        if original is not None and report(services, original) is not None:
            lost_roots.add(error.path[0] if error.path and _shown_unavailable(original) else None)
    if not lost_roots:
        return False
    headers["retry-after"] = str(RETRY_AFTER_S)
    return whole_answer_lost(result.data, lost_roots)


def whole_answer_lost(data: dict[str, object] | None, lost_roots: set[object]) -> bool:
    """No data, or every root field came back null through a dependency failure
    (`lost_roots`: the response keys whose errors came from a dependency). A nullable
    `createPatient` that failed is `{"createPatient": null}`, no answer at all; a root
    field that is null for another reason (not found, rate limited) is an answer."""
    if data is None:
        return True
    return all(value is None and key in lost_roots for key, value in data.items())


def _shown_unavailable(original: BaseException) -> bool:
    """Whether the client sees this error as SERVICE_UNAVAILABLE (errors.format_error):
    an error with a code of its own (RATE_LIMITED from a throttle that failed closed
    because Redis is down, say) is an answer, even when a dependency caused it."""
    if isinstance(original, CareGraphError):
        return original.code == "SERVICE_UNAVAILABLE"
    return True
