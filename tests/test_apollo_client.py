"""Automatic persisted queries as a real client speaks them: a stock Apollo Client (npm
`@apollo/client` with its persisted-queries link, tests/apollo/) run by the machine's
Node against the real app under uvicorn on a loopback port.

A recording middleware around the app notes what each /graphql request carried: the
first request has the hash only and gets PersistedQueryNotFound, the client retries once
with query and hash, and from then on (a second fetch, a second Node process with an
empty cache, and another server instance on the same Redis) the hash alone is enough.

The npm packages are installed from the committed lockfile when missing. Without Node or
npm the tests skip, or fail under CAREGRAPH_REQUIRE_SERVICES=1 (as scripts/test sets).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from auth.roles import Role
from demo.generator import load_demo_data
from settings import Settings
from tests.conftest import DEMO_ANCHOR
from tests.support import LiveServer, issue_token, live_server, running_app

APOLLO_DIR = Path(__file__).parent / "apollo"
SCRIPT = APOLLO_DIR / "fetch.mjs"
REQUIRE_SERVICES = os.environ.get("CAREGRAPH_REQUIRE_SERVICES") == "1"
NPM_CI_TIMEOUT_S = 180
NODE_RUN_TIMEOUT_S = 30
VARIABLES = {"first": 3}


def _unavailable(message: str) -> NoReturn:
    if REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def _installed() -> bool:
    """Every package of the lockfile is in node_modules at its locked version."""
    lock = json.loads((APOLLO_DIR / "package-lock.json").read_text())
    for path, entry in lock["packages"].items():
        if not path:
            continue  # the root project
        manifest = APOLLO_DIR / path / "package.json"
        if not manifest.exists():
            return False
        if json.loads(manifest.read_text()).get("version") != entry.get("version"):
            return False
    return True


@pytest.fixture(scope="module")
def node() -> str:
    """The Node executable, with tests/apollo's npm packages installed (npm ci)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable(
            "Node.js and npm are needed for the Apollo Client test (apt-get install nodejs npm)"
        )
    # One install at a time, should two pytest processes get here together.
    with open(APOLLO_DIR / "package-lock.json") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if not _installed():
            try:
                subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=APOLLO_DIR,
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=NPM_CI_TIMEOUT_S,
                )
            except subprocess.CalledProcessError as error:
                _unavailable(f"npm ci failed in {APOLLO_DIR}: {error.stderr[-2000:]}")
            except subprocess.TimeoutExpired:
                _unavailable(f"npm ci took more than {NPM_CI_TIMEOUT_S} s in {APOLLO_DIR}")
    return node


# --- what the server receives -----------------------------------------------------------


@dataclass
class Received:
    """One /graphql request as it arrived, and how it was answered."""

    method: str
    query: str | None
    sha256: str | None
    status: int = 0
    error_codes: list[str | None] = field(default_factory=list)
    cache_control: str | None = None

    @property
    def hash_only(self) -> bool:
        return self.sha256 is not None and self.query is None

    def __repr__(self) -> str:  # short, for assertion messages
        carried = "query+hash" if self.query and self.sha256 else "hash" if self.sha256 else "query"
        return f"<{self.method} {carried} -> {self.status} {self.error_codes or ''}>"


class RecordGraphQL:
    """ASGI middleware: records each /graphql request's method, query text and APQ hash
    (from the JSON body or the GET parameters), then passes it on unchanged."""

    def __init__(self, app: Starlette, received: list[Received]) -> None:
        self.app = app
        self.received = received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/graphql":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if scope["method"] == "GET":
            params = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
            extensions = json.loads(params.get("extensions", "null")) or {}
            query = params.get("query")
        else:
            payload = json.loads(body)
            extensions, query = payload.get("extensions") or {}, payload.get("query")
        record = Received(
            method=scope["method"],
            query=query,
            sha256=(extensions.get("persistedQuery") or {}).get("sha256Hash"),
        )
        self.received.append(record)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        response_body: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
                record.cache_control = headers.get("cache-control")
            elif message["type"] == "http.response.body":
                response_body.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, capture)
        answer = json.loads(b"".join(response_body) or b"{}")
        record.error_codes = [
            (error.get("extensions") or {}).get("code") for error in answer.get("errors") or []
        ]


def recorded_server(
    settings: Settings, received: list[Received]
) -> AbstractAsyncContextManager[LiveServer]:
    """The app live behind the recorder, noting each request in `received`; the database
    is `database()`'s to drop."""
    return live_server(
        settings, front=lambda app: RecordGraphQL(app, received), drop_database=False
    )


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[None]:
    """Demo data (the small set) in this test's databases, dropped afterwards."""
    async with running_app(settings) as application:
        services = application.state.services
        await load_demo_data(services, seed=7, size="small", anchor=DEMO_ANCHOR, progress=False)
        yield


def graphql_url(server: LiveServer) -> str:
    return f"{server.url}/graphql"


def unique_query() -> str:
    """The query the client runs. Its operation name is new each run, so its hash is too:
    nothing a previous run (or another one on the same Redis) stored can answer it."""
    name = f"ApolloDoctors_{uuid.uuid4().hex[:12]}"
    return (
        f"query {name}($first: Int!) {{ me {{ email role }} "
        "doctors(first: $first) { totalCount nodes { name specialty } } }"
    )


async def run_apollo(node: str, server: LiveServer, token: str, query: str, *, get: bool) -> dict:
    """One Node process, one new ApolloClient (empty cache): the query twice."""
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        "--url",
        graphql_url(server),
        "--query",
        query,
        "--variables",
        json.dumps(VARIABLES),
        *(["--get"] if get else []),
        cwd=APOLLO_DIR,
        env={**os.environ, "CAREGRAPH_TOKEN": token, "NODE_NO_WARNINGS": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), NODE_RUN_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode()
    output = json.loads(stdout)
    assert output["useGETForHashedQueries"] is get
    return output


async def plain_answer(server: LiveServer, token: str, query: str) -> dict:
    """What the same query answers sent the ordinary way (no APQ), for comparison."""
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
        response = await http.post(
            graphql_url(server), json={"query": query, "variables": VARIABLES}
        )
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    return body["data"]


def without_typenames(value):
    """Apollo's cache adds __typename to every selection; the plain query has none."""
    if isinstance(value, dict):
        return {k: without_typenames(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        return [without_typenames(v) for v in value]
    return value


def assert_registered_once_then_hash_only(received: list[Received], *, get: bool) -> str:
    """The Apollo sequence: miss, register, then hashes. Returns the hash."""
    hashed_method = "GET" if get else "POST"
    first, second, *later = received
    assert (first.method, first.hash_only, first.status) == (hashed_method, True, 200), received
    assert first.error_codes == ["PERSISTED_QUERY_NOT_FOUND"], received
    assert first.cache_control == "private, no-cache, must-revalidate"
    # The link's retry sends the full query over POST, with the hash.
    assert (second.method, second.query is not None, second.sha256) == (
        "POST",
        True,
        first.sha256,
    ), received
    assert (second.status, second.error_codes) == (200, []), received
    assert second.query is not None
    assert hashlib.sha256(second.query.encode()).hexdigest() == first.sha256
    for request in later:
        assert (request.method, request.hash_only, request.sha256) == (
            hashed_method,
            True,
            first.sha256,
        ), received
        assert (request.status, request.error_codes) == (200, []), received
    return first.sha256


@pytest.mark.parametrize("get", [False, True], ids=["POST", "useGETForHashedQueries"])
async def test_apollo_client_sends_the_full_query_once_then_the_hash_alone(node, settings, get):
    query = unique_query()
    log: list[Received] = []
    async with database(settings), recorded_server(settings, log) as server:
        token = await issue_token(server.services, Role.DOCTOR)
        first_run = await run_apollo(node, server, token, query, get=get)
        # A new process, a new client with an empty cache: only the server knows the hash.
        second_run = await run_apollo(node, server, token, query, get=get)
        received = list(log)  # before the plain request below, which is recorded too
        expected = await plain_answer(server, token, query)

    assert expected["me"]["role"] == "DOCTOR" and len(expected["doctors"]["nodes"]) == 3
    for data in first_run["results"] + second_run["results"]:
        assert without_typenames(data) == expected
    # Two processes, two fetches each, one retry with the query: five requests.
    assert len(received) == 5, received
    assert_registered_once_then_hash_only(received, get=get)
    assert sum(request.query is not None for request in received) == 1, received


async def test_a_query_registered_through_one_instance_is_found_by_another(
    node, settings, redis_url
):
    """Two app instances on the same real Redis: the hash is all the second one needs."""
    settings = settings.with_overrides(redis_url=redis_url)
    query = unique_query()
    one_log: list[Received] = []
    other_log: list[Received] = []
    async with (
        database(settings),
        recorded_server(settings, one_log) as one,
        recorded_server(settings, other_log) as other,
    ):
        token = await issue_token(one.services, Role.DOCTOR)
        through_one = await run_apollo(node, one, token, query, get=False)
        through_other = await run_apollo(node, other, token, query, get=False)
        by_one, by_other = list(one_log), list(other_log)
        expected = await plain_answer(other, token, query)

    for data in through_one["results"] + through_other["results"]:
        assert without_typenames(data) == expected
    assert len(by_one) == 3, by_one
    sha256 = assert_registered_once_then_hash_only(by_one, get=False)
    # The other instance never saw the query text, and never missed.
    assert len(by_other) == 2, by_other
    for request in by_other:
        assert (request.hash_only, request.sha256) == (True, sha256), by_other
        assert (request.status, request.error_codes) == (200, []), by_other
