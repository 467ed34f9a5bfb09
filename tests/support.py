"""The harness every test shares: the app built on the test services, clients signed in
per role, a world of linked records, a live server, and database round-trip counters.

conftest.py turns these into fixtures for one test; a module that shares one app among
its tests (to save seconds per test) builds it with `module_api` in a module-scoped
fixture, and a variant of it with other settings with `Api.variant`. A test that needs
an app on settings of its own starts it with `running_app` (or `running_api`, with an
administrator's client and counters), and one that needs a real socket (a browser, a
Node client) with `live_server`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from bson import ObjectId
from pymongo import monitoring
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import ASGIApp

from app import create_app
from auth.roles import Role
from runtime.probes import PROBE_STATEMENT
from runtime.services import Services
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
            # The dependency probe runs in the background, whatever the request does.
            if statement != PROBE_STATEMENT:
                self.statements.append(statement)

    def reset(self) -> None:
        self.statements.clear()


class GraphQLClient:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, query: str, variables: dict[str, Any] | None = None, **body: Any) -> dict:
        """A GraphQL response body (status 200) for a POSTed operation; `body` adds other
        request members, such as `operationName`."""
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}, **body}
        )
        assert response.status_code == 200, (response.status_code, response.text[:500])
        return response.json()

    async def data(self, query: str, variables: dict[str, Any] | None = None, **body: Any) -> dict:
        """The `data` of a response that must have no errors."""
        result = await self.post(query, variables, **body)
        assert "errors" not in result, result["errors"]
        return result["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        """The first error of a response that must have one."""
        body = await self.post(query, variables)
        assert body.get("errors"), body
        return body["errors"][0]


async def issue_token(
    services: Services,
    role: Role,
    *,
    patient_id: ObjectId | None = None,
    doctor_id: ObjectId | None = None,
    mfa: bool = True,
) -> str:
    """An account of `role` (linked to a patient or doctor record) and an access token
    for it, made directly: tests of other features need a caller, not a login flow."""
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


def settings_for_test(
    mongo_uri: str | None, data_dir: Path, *, database_url: str | None = None, **overrides: Any
) -> Settings:
    """Settings for one test app: its own MongoDB database, SQLite billing unless told
    otherwise, the Redis stand-in, no demo data, a fixed key and the cheapest bcrypt."""
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


# --- The app on the test services, and clients signed in to it ----------------------------


@asynccontextmanager
async def running_app(
    settings: Settings,
    *,
    mongo_event_listeners: list[monitoring.CommandListener] | None = None,
    drop_database: bool = True,
) -> AsyncIterator[Starlette]:
    """The app on `settings`, through its lifespan; its MongoDB database is dropped
    afterwards unless another app (or fixture) sharing it still needs it."""
    application = create_app(settings, mongo_event_listeners=mongo_event_listeners)
    async with application.router.lifespan_context(application):
        yield application
        if drop_database:
            services: Services = application.state.services
            await services.mongo_client.drop_database(settings.mongodb_database)


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


@dataclass
class LiveServer:
    url: str  # http://127.0.0.1:<port>
    app: Starlette

    @property
    def services(self) -> Services:
        return self.app.state.services


@asynccontextmanager
async def live_server(
    settings: Settings,
    *,
    front: Callable[[Starlette], ASGIApp] | None = None,
    drop_database: bool = True,
) -> AsyncIterator[LiveServer]:
    """The app on `settings` under uvicorn on a loopback port (behind `front`, an ASGI
    middleware such as a request recorder, if given); its database dropped afterwards
    unless `drop_database` is False."""
    application = create_app(settings)
    async with serving_on_loopback(front(application) if front else application) as url:
        yield LiveServer(url, application)
        if drop_database:
            await application.state.services.mongo_client.drop_database(settings.mongodb_database)


@asynccontextmanager
async def signed_in(
    app: Starlette, token: str | None = None, *, raise_app_exceptions: bool = True
) -> AsyncIterator[GraphQLClient]:
    """A client of `app` over ASGI, sending `token` as its bearer token (none: anonymous).
    With raise_app_exceptions=False a 500 comes back as a response to assert on."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as http:
        yield GraphQLClient(http)


@dataclass
class Api:
    """A running app, an administrator's client of it, and round-trip counters on its
    MongoDB client and SQL engine."""

    app: Starlette
    settings: Settings
    services: Services
    client: GraphQLClient
    mongo: MongoCommandCounter
    sql: SqlStatementCounter
    token: str  # the administrator's

    @property
    def http(self) -> httpx.AsyncClient:
        return self.client.http

    async def post(self, query: str, variables: dict[str, Any] | None = None, **body: Any) -> dict:
        return await self.client.post(query, variables, **body)

    async def data(self, query: str, variables: dict[str, Any] | None = None, **body: Any) -> dict:
        return await self.client.data(query, variables, **body)

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict:
        return await self.client.error(query, variables)

    def reset(self) -> None:
        self.mongo.reset()
        self.sql.reset()

    def data_round_trips(self) -> list[str]:
        """Database commands since the last reset, besides authenticating the caller."""
        mongo = [
            f"{command} {collection}"
            for command, collection in zip(self.mongo.commands, self.mongo.collections, strict=True)
        ]
        # Authentication reads the caller's account once per request, before GraphQL.
        if mongo and mongo[0] == "find users":
            mongo = mongo[1:]
        return mongo + [f"SQL {statement}" for statement in self.sql.statements]

    def variant(self, **overrides: Any) -> AbstractAsyncContextManager[Api]:
        """Another app over the same databases and signing key, with other settings; the
        same administrator's token works on it."""
        return running_api(
            self.settings.with_overrides(**overrides), token=self.token, drop_database=False
        )


@asynccontextmanager
async def running_api(
    settings: Settings, *, token: str | None = None, drop_database: bool = True
) -> AsyncIterator[Api]:
    """The app on `settings`, through its lifespan, with an administrator's client (a new
    account unless `token` is given). A 500 comes back as a response to assert on. The
    database is dropped afterwards unless `drop_database` is False."""
    mongo = MongoCommandCounter()
    async with running_app(
        settings, mongo_event_listeners=[mongo], drop_database=drop_database
    ) as application:
        services: Services = application.state.services
        sql = SqlStatementCounter()
        sql.attach(services.engine)
        token = token or await issue_token(services, Role.ADMIN)
        async with signed_in(application, token, raise_app_exceptions=False) as client:
            yield Api(application, settings, services, client, mongo, sql, token)


@asynccontextmanager
async def module_api(mongo_uri: str, data_dir: Path, **overrides: Any) -> AsyncIterator[Api]:
    """An app on a database of its own, for a module's tests to share; the database is
    dropped afterwards."""
    async with running_api(settings_for_test(mongo_uri, data_dir, **overrides)) as api:
        yield api


# --- A world of records ---------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    """One of each record, linked: a patient with a contact, conditions and allergies; a
    doctor who works all week; a visit booked between them two days ahead; a prescription
    and a bill for the visit. `tokens` holds an access token for each role (second factor
    done), the patient's and the doctor's accounts bound to these records."""

    patient: str
    doctor: str
    appointment: str
    prescription: str
    bill: str
    tokens: dict[Role, str]


WORLD_APPOINTMENT_DAYS = 2  # how many days ahead the world's visit is; later days are free


async def build_world(client: GraphQLClient, services: Services) -> World:
    """Write a `World` through the API, as `client` (an administrator)."""
    from tests.factories import ALL_WEEK, future_slot, iso

    patient = (
        await client.data(
            """mutation { createPatient(input: {givenName: "Pat", familyName: "World",
             birthDate: "1970-01-01", sex: FEMALE, conditions: ["Asthma"], allergies: ["Latex"],
             contact: {phone: "+1 555 000 1111", email: "pat@example.org",
                       address: {line1: "1 Main St", city: "Springfield"}}}) { id } }"""
        )
    )["createPatient"]["id"]
    doctor = (
        await client.data(
            'mutation($a: [AvailabilityWindowInput!]!) { createDoctor(input: {givenName: "Doc", '
            'familyName: "World", specialty: CARDIOLOGY, availability: $a}) { id } }',
            {"a": ALL_WEEK},
        )
    )["createDoctor"]["id"]
    appointment = (
        await client.data(
            "mutation($p: ID!, $d: ID!, $s: DateTime!) { createAppointment(input: {patientId: $p, "
            'doctorId: $d, start: $s, reason: "Wheezing"}) { ... on Appointment { id } } }',
            {"p": patient, "d": doctor, "s": iso(future_slot(days=WORLD_APPOINTMENT_DAYS))},
        )
    )["createAppointment"]["id"]
    prescription = (
        await client.data(
            "mutation($p: ID!, $d: ID!) { createPrescription(input: {patientId: $p, doctorId: $d, "
            'drug: "Salbutamol", dosage: {value: 100, unit: MCG}, frequency: AS_NEEDED, '
            'startDate: "2030-01-01", cost: "12.00", indication: "Asthma"}) { id } }',
            {"p": patient, "d": doctor},
        )
    )["createPrescription"]["id"]
    bill = (
        await client.data(
            "mutation($p: ID!, $a: ID!) { createBill(input: {patientId: $p, appointmentId: $a, "
            'disease: "Asthma", totalCost: "80.00"}) { id } }',
            {"p": patient, "a": appointment},
        )
    )["createBill"]["id"]
    tokens = await role_tokens(services, patient=patient, doctor=doctor)
    return World(patient, doctor, appointment, prescription, bill, tokens)


@dataclass(frozen=True)
class Others:
    """Records with no tie to the world's: another patient, and another doctor (with a
    token) who has never seen the world's patient, for tests of who may reach what."""

    patient: str
    doctor: str
    doctor_token: str


async def build_others(client: GraphQLClient, services: Services) -> Others:
    """Write `Others` through the API, as `client` (an administrator)."""
    from tests.factories import create_doctor, create_patient

    patient = await create_patient(client, givenName="Olive", familyName="Other")
    doctor = await create_doctor(client, givenName="Otto", familyName="Other")
    token = await issue_token(services, Role.DOCTOR, doctor_id=ObjectId(doctor["id"]))
    return Others(patient["id"], doctor["id"], token)


async def audit_records(services: Services) -> list[dict]:
    """The audit log, oldest first."""
    return await services.db["audit_log"].find({}).sort("seq", 1).to_list()


async def role_tokens(services: Services, *, patient: str, doctor: str) -> dict[Role, str]:
    """A token per role; the patient's account is `patient`'s, the doctor's `doctor`'s."""
    return {
        role: await issue_token(
            services,
            role,
            patient_id=ObjectId(patient) if role is Role.PATIENT else None,
            doctor_id=ObjectId(doctor) if role is Role.DOCTOR else None,
        )
        for role in Role
    }
