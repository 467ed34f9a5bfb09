"""Fixtures: one embedded MongoDB server per session, a fresh database per test,
billing on SQLite (and PostgreSQL where a test asks for both), real Redis on demand.

Set CAREGRAPH_REQUIRE_SERVICES=1 (the test script does) to fail instead of skip when
PostgreSQL or Redis is not reachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path

import asyncpg
import pytest
import redis
from starlette.applications import Starlette

from auth.roles import Role
from runtime.embedded_mongo import EmbeddedMongo
from runtime.services import Services
from settings import Settings
from tests.support import (
    GraphQLClient,
    MongoCommandCounter,
    Others,
    SqlStatementCounter,
    World,
    build_others,
    build_world,
    issue_token,
    running_app,
    settings_for_test,
    signed_in,
)

POSTGRES_ADMIN_URL = os.environ.get(
    "CAREGRAPH_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)
# Each pytest-xdist worker (gw0, gw1, ...) empties its own Redis database after every
# test, so parallel workers never flush each other's data: 15, 14, ...
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
REDIS_TEST_URL = os.environ.get("CAREGRAPH_TEST_REDIS", f"redis://127.0.0.1:6379/{15 - _WORKER}")
REQUIRE_SERVICES = os.environ.get("CAREGRAPH_REQUIRE_SERVICES") == "1"
# Demo data placed around a fixed week, so fixtures are the same on every run.
DEMO_ANCHOR = date(2026, 3, 2)


def _unavailable(what: str, error: Exception) -> None:
    message = f"{what} is not reachable: {error}"
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedMongo(tmp_path_factory.mktemp("mongodb") / "data")
    uri = server.start()
    yield uri
    server.stop()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"caregraph_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable("PostgreSQL", error)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        yield f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis (database 15), emptied after the test."""
    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (OSError, redis.RedisError) as error:
        client.close()
        _unavailable("Redis", error)
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


@pytest.fixture(params=["sqlite"])
def billing_backend(request: pytest.FixtureRequest) -> str:
    """Override with params=["sqlite", "postgresql"] in modules that test billing SQL."""
    return request.param


@pytest.fixture
async def billing_url(billing_backend: str, tmp_path: Path) -> AsyncIterator[str]:
    if billing_backend == "postgresql":
        async with fresh_postgres_database() as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'billing.sqlite3'}"


@pytest.fixture
def settings(mongo_uri: str, billing_url: str, tmp_path: Path) -> Settings:
    return settings_for_test(mongo_uri, tmp_path, database_url=billing_url)


@pytest.fixture
def mongo_counter() -> MongoCommandCounter:
    return MongoCommandCounter()


@pytest.fixture
async def app(settings: Settings, mongo_counter: MongoCommandCounter) -> AsyncIterator[Starlette]:
    async with running_app(settings, mongo_event_listeners=[mongo_counter]) as application:
        yield application


@pytest.fixture
def services(app: Starlette) -> Services:
    return app.state.services


@pytest.fixture
def sql_counter(services: Services) -> SqlStatementCounter:
    counter = SqlStatementCounter()
    counter.attach(services.engine)
    return counter


# The name most test modules import the signed-in client under.
http_client = signed_in


@pytest.fixture
async def client(app: Starlette, services: Services) -> AsyncIterator[GraphQLClient]:
    """A client signed in as an administrator (second factor done)."""
    async with http_client(app, await issue_token(services, Role.ADMIN)) as signed_in:
        yield signed_in


@pytest.fixture
async def anonymous(app: Starlette) -> AsyncIterator[GraphQLClient]:
    async with http_client(app) as client:
        yield client


@pytest.fixture
async def demo(services: Services) -> dict[str, int]:
    """The small demo data set, loaded into this test's databases."""
    from demo.generator import load_demo_data

    return await load_demo_data(services, seed=7, size="small", anchor=DEMO_ANCHOR, progress=False)


@pytest.fixture
async def world(client: GraphQLClient, services: Services) -> World:
    """One of each record, linked, and a token per role bound to them (tests.support.World)."""
    return await build_world(client, services)


@pytest.fixture
async def others(client: GraphQLClient, services: Services) -> Others:
    """Another patient and another doctor, with no tie to the world (tests.support.Others)."""
    return await build_others(client, services)
