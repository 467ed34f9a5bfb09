"""A MongoDB transaction with retries bounded by the request's time budget.

PyMongo's `with_transaction` retries transient errors for 120 s whatever `timeoutMS`
says: a booking caught in a failover could hold its request (and a graceful shutdown)
for two minutes. This loop follows the same retry rules (TransientTransactionError:
run the whole transaction again; UnknownTransactionCommitResult: retry the commit)
but stops at the deadline and re-raises the last error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ExecutionTimeout, PyMongoError

from runtime.request_guard import remaining_s

T = TypeVar("T")
# Outside a request (CLI jobs, demo data) a transaction gets this long.
DEFAULT_BUDGET_S = 10.0
_BACKOFF_S = 0.05


def _has_label(error: BaseException, label: str) -> bool:
    return isinstance(error, PyMongoError) and error.has_error_label(label)


async def run_transaction(
    client: AsyncMongoClient[Any],
    work: Callable[[AsyncClientSession], Awaitable[T]],
    *,
    budget_s: float | None = None,
) -> T:
    budget = remaining_s(DEFAULT_BUDGET_S) if budget_s is None else budget_s
    deadline = time.monotonic() + budget
    async with client.start_session() as session:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ExecutionTimeout("transaction ran out of its time budget")
            with pymongo.timeout(left):
                await session.start_transaction()
                try:
                    result = await work(session)
                except BaseException as error:
                    if session.in_transaction:
                        await session.abort_transaction()
                    if _has_label(error, "TransientTransactionError") and _time_left(deadline):
                        await _pause(deadline)
                        continue
                    raise
                if await _commit(session, deadline):
                    return result


async def _commit(session: AsyncClientSession, deadline: float) -> bool:
    """Commit; True when done, False when the whole transaction must run again."""
    while True:
        try:
            await session.commit_transaction()
            return True
        except PyMongoError as error:
            if _has_label(error, "UnknownTransactionCommitResult") and _time_left(deadline):
                continue  # the commit is idempotent: ask again
            if _has_label(error, "TransientTransactionError") and _time_left(deadline):
                await _pause(deadline)
                return False
            raise


def _time_left(deadline: float) -> bool:
    return deadline - time.monotonic() > _BACKOFF_S


async def _pause(deadline: float) -> None:
    await asyncio.sleep(min(_BACKOFF_S, max(0.0, deadline - time.monotonic())))
