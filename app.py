"""The application entry: create_app(settings) builds the Starlette app around /graphql."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth import passwords
from backup.alarms import IntegrityAlarms
from backup.schedule import BackupScheduler
from cds.service import cds_routes
from datasources.data_migrations import apply_data_migrations
from datasources.integrity_alarms import IntegrityAlarmStore
from datasources.key_management import encrypt_existing
from errors import HttpError
from observability.health import livez, readiness, readyz
from observability.metrics_endpoint import metrics_route
from runtime.services import Services
from schema import CareGraphSchema, build_schema
from settings import Settings
from web.graphiql import graphiql_routes
from web.graphql_endpoint import GraphQLEndpoint, error_response

if TYPE_CHECKING:  # the type only: MongoDB access itself stays in datasources/ and runtime/
    from pymongo.monitoring import CommandListener

log = logging.getLogger("caregraph")


async def _routing_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 (no such path) and 405 (method not routed) are plain text:
    every answer of the API is JSON with a code, so clients switch on one shape."""
    assert isinstance(error, StarletteHTTPException)
    code = "NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
    message = {404: f"No such endpoint: {request.url.path}", 405: "Method not allowed"}.get(
        error.status_code, error.detail
    )
    return error_response(
        HttpError(error.status_code, message, code=code, headers=dict(error.headers or {}))
    )


class MaskedCrashes:
    """An unexpected exception anywhere becomes a masked JSON 500 with a code, inside
    SecurityHeaders, so even a crash answers with the usual headers and no details."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error answering %s %s", scope["method"], scope["path"])
            if started:
                raise  # too late for a clean answer; the server closes the connection
            error = HttpError(500, "Internal server error", code="INTERNAL_SERVER_ERROR")
            await error_response(error)(scope, receive, send)


class BodySizeLimit:
    """Refuse request bodies over the limit before anything parses them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _too_large(scope, receive, send)
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _BodyTooLarge()
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await _too_large(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse(
        {
            "errors": [
                {"message": "Request body too large", "extensions": {"code": "BAD_USER_INPUT"}}
            ]
        },
        status_code=413,
    )
    await response(scope, receive, send)


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                for name, value in (
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    # Responses carry health data: no shared or browser caches.
                    (b"cache-control", b"no-store"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None,
    *,
    schema: CareGraphSchema | None = None,
    mongo_event_listeners: list[CommandListener] | None = None,
) -> Starlette:
    """The app on `settings` (default: the environment), serving `schema` (default: the
    one build_schema makes from the same settings, which is what production runs)."""
    settings = settings or Settings.from_env()
    schema = schema or build_schema(settings)
    endpoint = GraphQLEndpoint(settings, schema)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = await Services.open(settings, mongo_event_listeners=mongo_event_listeners)
        try:
            await passwords.warm_up(rounds=settings.bcrypt_rounds)
            if settings.demo_data:
                from demo.accounts import describe_demo_logins
                from demo.generator import load_demo_data_if_empty

                await load_demo_data_if_empty(
                    services, seed=settings.demo_seed, size=settings.demo_size
                )
                logins = describe_demo_logins(settings.data_dir)
                if logins:
                    print(logins, flush=True)
            # Existing documents get coded clinical data (datasources/data_migrations.py).
            await apply_data_migrations(services.db, services.knowledge)
            if services.encryptor is not None:
                # Plaintext PHI (demo data, records from before encryption) is encrypted
                # by a resumable migration; a no-op once done (datasources/key_management.py).
                await encrypt_existing(services)
            app.state.services = services
            endpoint.attach(services)
            # Scheduled backups and the periodic integrity check (backup/schedule.py).
            app.state.backup_scheduler = scheduler = BackupScheduler(
                services,
                IntegrityAlarms(
                    IntegrityAlarmStore(services.db), webhook_url=settings.ops.alarm_webhook_url
                ),
            )
            scheduler.start()
            # Everything allocated so far (modules, schema) lives as long as the process:
            # moving it out of the collector's reach keeps full collections, and the
            # latency spikes they caused under load (measured: 35 ms+), short.
            gc.freeze()
            yield
        finally:
            started: BackupScheduler | None = getattr(app.state, "backup_scheduler", None)
            if started is not None:
                await started.stop()
            endpoint.attach(None)
            await services.close()

    async def health(request: Request) -> JSONResponse:
        # The same bounded, parallel checks as /readyz (kept for existing monitors).
        return await readiness(request.app.state.services)

    application = Starlette(
        routes=[
            Route("/graphql", endpoint, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            metrics_route(settings),
            *graphiql_routes(settings, schema, schema_access=endpoint.schema_access),
            *cds_routes(),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(MaskedCrashes),
            Middleware(BodySizeLimit, max_bytes=settings.max_body_bytes),
        ],
        exception_handlers={StarletteHTTPException: _routing_error},
        lifespan=lifespan,
    )
    if settings.ops.tracing:
        from observability.tracing import enable_tracing

        enable_tracing(application, schema)
    return application
