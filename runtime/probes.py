"""One cheap round trip per dependency, for the circuit probe and /readyz.

Also the SQL fast-fail hook: while the `sql` circuit is open, opening a new database
connection is refused at once instead of waiting for a connect timeout (the probe
itself is let through: it is what closes the circuit).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pymongo
import redis.asyncio as redis
import sqlalchemy as sa
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from runtime.dependencies import MONGODB, REDIS, SQL, Circuit, ServiceUnavailable


class _ProbeFlag:
    """Set while the SQL probe runs (SQLAlchemy's sync hooks run in a greenlet, where a
    context variable set by the caller is not reliably visible)."""

    active = False


_probing = _ProbeFlag()
PROBE_TIMEOUT_S = 0.8


# Named, so round-trip counters can tell the background probe from a request's work.
PROBE_STATEMENT = "SELECT 1 /* caregraph dependency probe */"


def dependency_probes(
    db: AsyncDatabase[Any], engine: AsyncEngine, redis_client: redis.Redis
) -> dict[str, Callable[[], Awaitable[object]]]:
    async def mongodb() -> object:
        with pymongo.timeout(PROBE_TIMEOUT_S):
            return await db.command("ping")

    async def sql() -> object:
        _probing.active = True
        try:
            async with engine.connect() as connection:
                return await connection.execute(sa.text(PROBE_STATEMENT))
        finally:
            _probing.active = False

    async def redis_ping() -> object:
        return await redis_client.ping()

    return {MONGODB: mongodb, SQL: sql, REDIS: redis_ping}


def install_sql_fast_fail(engine: AsyncEngine, circuit: Circuit) -> None:
    """Refuse new SQL connections while the circuit is open (probes excepted)."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def refuse_while_down(*_args: object) -> None:
        if not circuit.is_up and not _probing.active:
            raise ServiceUnavailable(SQL)
