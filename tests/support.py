"""Helpers shared by the tests: a GraphQL client and database round-trip counters."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import monitoring
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from schema import CareGraphSchema, build_schema
from settings import Settings

# Commands that read or write data; handshakes, heartbeats and session cleanup are not
# part of answering a query.
DATA_COMMANDS = {
    "find",
    "getMore",
    "aggregate",
    "count",
    "countDocuments",
    "insert",
    "update",
    "delete",
    "findAndModify",
    "distinct",
}


@functools.cache
def default_schema() -> CareGraphSchema:
    """The schema built with default settings, for tests that inspect its types or SDL
    (none of which depend on settings)."""
    return build_schema(Settings())


class MongoCommandCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[str] = []
        self.collections: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in DATA_COMMANDS:
            self.commands.append(event.command_name)
            self.collections.append(str(event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def reset(self) -> None:
        self.commands.clear()
        self.collections.clear()


@dataclass
class SqlStatementCounter:
    statements: list[str] = field(default_factory=list)

    def attach(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def count(conn, cursor, statement, parameters, context, executemany):  # noqa: ARG001
            self.statements.append(statement)

    def reset(self) -> None:
        self.statements.clear()


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        """The `data` of a response that must have no errors."""
        body = await self.post(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        """The first error of a response that must have one."""
        body = await self.post(query, variables)
        assert body.get("errors"), body
        return body["errors"][0]


async def issue_token(services, role, *, patient_id=None, doctor_id=None, mfa=True) -> str:
    """An account of `role` (linked to a patient or doctor record) and an access token
    for it, made directly: tests of other features need a caller, not a login flow."""
    import uuid

    from datasources.scope import AccessScope
    from datasources.users import UserStore

    users = UserStore(services.db, AccessScope.system())
    user = await users.create(
        email=f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@test.invalid",
        password_hash="!unusable",
        role=role.value,
        patient_id=patient_id,
        doctor_id=doctor_id,
    )
    return services.tokens.issue_access(
        user_id=str(user["_id"]),
        role=role.value,
        version=user["tokenVersion"],
        mfa=mfa,
        session="test-session",
    ).token


def settings_for_test(mongo_uri: str, data_dir, *, database_url: str | None = None, **overrides):
    """Settings for one test app: its own MongoDB database, SQLite billing unless told
    otherwise, the Redis stand-in, no demo data, a fixed key and the cheapest bcrypt."""
    import uuid

    from settings import Settings

    return Settings(
        data_dir=data_dir,
        mongodb_uri=mongo_uri,
        mongodb_database=f"test_{uuid.uuid4().hex[:12]}",
        database_url=database_url or f"sqlite+aiosqlite:///{data_dir / 'billing.sqlite3'}",
        redis_url=None,
        demo_data=False,
        jwt_secret="test-signing-key-" + "x" * 32,
        bcrypt_rounds=4,  # the cheapest cost: tests check behaviour, not hashing strength
        # The embedded server drops a database in 1-14 s when the machine is loaded (other
        # suites, benchmarks); the production default of 10 s made teardown flaky.
        mongodb_timeout_ms=60_000,
        **overrides,
    )


@asynccontextmanager
async def serving_on_loopback(asgi_app) -> AsyncIterator[str]:
    """Serve an ASGI app under uvicorn on a free loopback port, in the calling test's
    event loop (so the test can still reach the app's services, e.g. to make a token).
    Yields the base URL, http://127.0.0.1:<port>."""
    import asyncio
    import socket

    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(asgi_app, lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if serving.done():
                serving.result()  # start-up failed: raise its error
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        listener.close()
