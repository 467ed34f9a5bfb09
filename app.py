"""The application entry: create_app(settings) builds the Starlette app around /graphql."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.exceptions import InvalidOperationTypeError
from strawberry.types import ExecutionResult

from audit.request import open_audit, phi_channel
from auth import passwords
from auth.authenticate import authenticate
from backup.alarms import IntegrityAlarms
from backup.schedule import BackupScheduler
from cds.service import cds_routes
from context import Context
from datasources.audit_log import AuditUnavailable
from datasources.data_migrations import apply_data_migrations
from datasources.emergency import EmergencyGrantStore
from datasources.integrity_alarms import IntegrityAlarmStore
from datasources.key_management import encrypt_existing
from datasources.phi_access import AuditWriter, BulkExportRefused, PhiStores, finish_request
from datasources.redis.apq_store import ApqStore
from datasources.scope import AccessScope
from datasources.users import UserStore
from errors import HttpError, format_error
from observability import metrics
from observability.health import livez, readiness, readyz
from observability.logs import with_request_id
from observability.metrics_endpoint import metrics_route
from persisted.manifest import manifest_for
from persisted.protocol import OperationRequest, PersistedQueries, Resolution
from runtime.dependencies import DependencyDown
from runtime.idempotency import IdempotentRequests
from runtime.request_guard import mark_unavailable, refuse_if_down, request_guard
from runtime.services import Services
from schema import CareGraphSchema, build_schema
from settings import Settings
from web.graphiql import graphiql_routes, render_graphiql

log = logging.getLogger("caregraph")


class CareGraphView(GraphQL):
    def __init__(self, settings: Settings, schema: CareGraphSchema) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.graphiql else None,
            # The schema has no subscriptions: no WebSocket protocol is offered at all.
            subscription_protocols=(),
            multipart_uploads_enabled=False,
        )
        self.settings = settings
        self.services: Services | None = None  # set by the lifespan
        # Built here, not per request: a broken file in queries/ stops the start.
        manifest = manifest_for(settings, schema._schema)
        self.persisted = PersistedQueries(
            manifest=manifest, settings=settings, schema=schema._schema
        )
        # The trusted Login document's id, for GraphiQL's sign-in form (None: send its text).
        login = manifest.by_name("Login")
        self.login_document_id: str | None = login.document_id if login else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        services = self.services
        assert services is not None, "services are opened by the app lifespan"
        send = with_request_id(scope, send)
        try:
            async with request_guard(services, scope):
                if services.idempotency is not None and IdempotentRequests.applies(scope):
                    return await services.idempotency.serve(scope, receive, send, self._answer)
                return await self._answer(scope, receive, send)
        except DependencyDown as error:
            metrics.observe_refusal(error.code, "unavailable")
            await _error_response(error)(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self.run(Request(scope, receive))
        except HttpError as error:
            if not isinstance(error, DependencyDown):
                metrics.observe_refusal(error.code, "refused")
            response = _error_response(error)
        except HTTPException as error:
            # Strawberry's own refusals (bad JSON, wrong method): JSON, with a code.
            response = _error_response(HttpError(error.status_code, error.reason))
        await response(scope, receive, send)

    def should_render_graphql_ide(self, request) -> bool:  # type: ignore[override]
        # Strawberry also renders it for `Accept: */*` without a `query`: that would
        # answer a persisted-query GET (hash or documentId only) with HTML.
        params = request.query_params
        return (
            request.method == "GET"
            and "text/html" in request.headers.get("accept", "")
            and not any(name in params for name in ("query", "extensions", "documentId"))
        )

    async def parse_http_body(self, request) -> OperationRequest:  # type: ignore[override]
        content_type = (request.content_type or "").split(";", 1)[0].strip().lower()
        if request.method == "GET":
            data = self.parse_query_params(request.query_params)
        elif content_type == "application/json":
            data = self.parse_json(await request.get_body())
        else:
            # Browsers send form and text/plain POSTs cross-site without a preflight:
            # refusing them is CSRF protection, and multipart uploads stay off.
            raise HttpError(
                415,
                "Send GraphQL requests as application/json",
                headers={"Accept-Post": "application/json"},
            )
        if isinstance(data, list):
            raise HttpError(400, "Batched operations are not supported: send one per request")
        return OperationRequest.from_payload(data)

    async def execute_operation(  # type: ignore[override]
        self,
        request: Request,
        request_adapter,
        request_data: OperationRequest,
        context: Context,
        root_value,
        sub_response: Response,
    ) -> ExecutionResult:
        principal = context.principal
        resolution = await self.persisted.resolve(
            request_data,
            method=request_adapter.method,
            role=principal.role.value if principal else None,
        )
        request_data.query = resolution.query
        context.trusted_document = resolution.trusted
        if context.audit is not None:
            context.audit.channel = phi_channel(request, request_data, resolution)
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        assert self.services is not None
        if isinstance(result, ExecutionResult):
            metrics.observe_operation(
                operation=resolution.trusted.name
                if resolution.trusted
                else metrics.operation_name(request_data.operation_name, resolution.query),
                by_reference=resolution.by_reference,
                trusted=resolution.trusted is not None,
                report_hits=[outcome.hit for outcome in context.report_outcomes],
                result=result,
            )
        if isinstance(result, ExecutionResult) and mark_unavailable(
            self.services, result, sub_response.headers
        ):
            sub_response.status_code = 503
        await self._deliver_phi_or_refuse(context, result)
        if self._publicly_cacheable(request, resolution, result):
            sub_response.headers["cache-control"] = (
                f"public, max-age={self.settings.public_cache_max_age_s}"
            )
            sub_response.headers["vary"] = "Authorization, Cookie"
        return result  # type: ignore[return-value]

    async def _deliver_phi_or_refuse(self, context: Context, result: object) -> None:
        """Fail closed: PHI leaves only after its audit record is stored and the caller
        is within the bulk-export budget (datasources/phi_access.py)."""
        services = self.services
        if context.audit is None or services is None or services.audit_log is None:
            return
        try:
            errors = getattr(result, "errors", None) or []
            if any(isinstance(e.original_error, AuditUnavailable) for e in errors):
                raise AuditUnavailable("a write's audit record could not be stored")
            await finish_request(
                buffer=context.audit,
                log=services.audit_log,
                scope=context.sources.patients.scope,
                guard=services.phi_guard,
            )
        except AuditUnavailable as error:
            log.error("audit write failed; PHI withheld: %s", error)
            raise HttpError(
                503,
                "The audit trail is unavailable: no health data can be delivered",
                code="AUDIT_UNAVAILABLE",
                headers={"Retry-After": "5"},
            ) from None
        except BulkExportRefused:
            raise HttpError(
                429,
                "Too many distinct patients' records read: the bulk-export guard "
                "refused this request",
                code="RATE_LIMITED",
                headers={"Retry-After": str(self.settings.phi_read_window_s)},
            ) from None

    @staticmethod
    def _publicly_cacheable(request: Request, resolution: Resolution, result: object) -> bool:
        """A CDN may keep a GET by hash or id whose answer cannot depend on who asks."""
        return (
            request.method == "GET"
            and resolution.by_reference
            and "authorization" not in request.headers
            and "cookie" not in request.headers
            and isinstance(result, ExecutionResult)
            and not result.errors
        )

    async def execute_single(  # type: ignore[override]
        self, request, request_adapter, sub_response, context, root_value, request_data
    ) -> ExecutionResult:
        try:
            return await super().execute_single(
                request, request_adapter, sub_response, context, root_value, request_data
            )
        except HTTPException as error:
            if isinstance(error.__cause__, InvalidOperationTypeError):
                # GET must stay safe (links, prefetches, CDNs): mutations need POST.
                raise HttpError(
                    405, "Mutations are only accepted over POST", headers={"Allow": "POST"}
                ) from error
            raise

    async def render_graphql_ide(self, request: Request) -> Response:
        return render_graphiql(
            self.login_document_id, schema_needs_token=not self.settings.introspection
        )

    async def schema_access(self, request: Request) -> HttpError | None:
        """Whether GraphiQL's schema SDL may go to this caller (None) or why not.

        The SDL is the introspection result, so it goes to whoever could learn the schema
        anyway. Introspection on: anyone. Off: only a signed-in caller who may send
        free-form queries (allows_free_form), since writing queries is what the schema is
        for: analysts (CAREGRAPH_FREEFORM_ROLES) on a persisted-only deployment, and every
        signed-in user in open or allow-list-audit mode, who can already send any query.
        Anonymous callers never, in any mode: all they can do is sign in (login,
        register, refreshToken), so a schema handed to them is reconnaissance, not a tool.
        """
        if self.settings.introspection:
            return None
        services = self.services
        assert services is not None, "services are opened by the app lifespan"
        principal, auth_error = await authenticate(
            request.headers.get("authorization"),
            tokens=services.tokens,
            users=UserStore(services.db, AccessScope.system()),
        )
        if principal is None:
            message = auth_error or "Sign in to see the schema: send Authorization: Bearer <token>"
            return HttpError(
                401, message, code="UNAUTHENTICATED", headers={"WWW-Authenticate": "Bearer"}
            )
        if not self.persisted.allows_free_form(principal.role.value):
            return HttpError(
                403, "This account runs persisted queries only: no schema", code="FORBIDDEN"
            )
        return None

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        services = self.services
        assert services is not None, "services are opened by the app lifespan"
        # Every request reads MongoDB (the caller's account at least): refuse at once
        # while it is known to be down, instead of waiting out server selection.
        refuse_if_down(services, "mongodb")
        users = UserStore(services.db, AccessScope.system())
        principal, auth_error = await authenticate(
            request.headers.get("authorization"), tokens=services.tokens, users=users
        )
        scope = AccessScope(principal, services.db)
        context = Context(
            request=request,
            response=response,
            settings=self.settings,
            sources=services.data_sources(scope),
            accounts=services.accounts(),
            directory=services.directory(),
            principal=principal,
            auth_error=auth_error,
            reports=services.reports,
            report_cache=services.report_cache,
            integrity_alarms=IntegrityAlarmStore(services.db),
            knowledge=services.knowledge,
            safety=services.safety(scope),
        )
        if services.audit_log is not None:
            context.phi = PhiStores(services.audit_log, EmergencyGrantStore(services.db))
        if self.settings.audit_enabled and services.audit_log is not None:
            context.audit = open_audit(request, principal)
            scope.audit = AuditWriter(services.db, services.audit_log, context.audit, scope)
        # process_result sees the request, not the context: share the outcomes list.
        request.state.report_outcomes = context.report_outcomes
        return context

    async def process_result(  # type: ignore[override]
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        response: dict[str, Any] = {"data": result.data}
        if result.errors:
            response["errors"] = [
                format_error(error, hide_suggestions=self.settings.production)
                for error in result.errors
            ]
            metrics.count_errors(response["errors"])
        extensions = dict(result.extensions or {})
        outcomes = getattr(request.state, "report_outcomes", None)
        if outcomes:
            # Says, per report field, whether it came from the cache.
            extensions["reportCache"] = [
                {
                    "report": o.report,
                    "hit": o.hit,
                    **({"bypassed": o.bypassed} if o.bypassed else {}),
                }
                for o in outcomes
            ]
        if extensions:
            response["extensions"] = extensions
        return response  # type: ignore[return-value]

    def parse_json(self, data: str | bytes) -> object:
        parsed = super().parse_json(data)
        # Strawberry expects an object (or a batch list, refused later); a bare number,
        # string or null would otherwise reach `.get` and become a 500.
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    def decode_json(self, data: str | bytes) -> object:
        # orjson, not json.loads: it refuses (JSONDecodeError, so a 400) what json.loads
        # lets through to fail later as a 500: lone surrogates ("\ud800"), which no store
        # or hash can encode, and nesting deep enough to raise RecursionError.
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)


def _error_response(error: HttpError) -> Response:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _routing_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 (no such path) and 405 (method not routed) are plain text:
    every answer of the API is JSON with a code, so clients switch on one shape."""
    assert isinstance(error, StarletteHTTPException)
    code = "NOT_FOUND" if error.status_code == 404 else "BAD_REQUEST"
    message = {404: f"No such endpoint: {request.url.path}", 405: "Method not allowed"}.get(
        error.status_code, error.detail
    )
    return _error_response(
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
            await _error_response(error)(scope, receive, send)


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


def create_app(settings: Settings | None = None, *, mongo_event_listeners=None) -> Starlette:
    settings = settings or Settings.from_env()
    schema = build_schema(settings)
    view = CareGraphView(settings, schema)

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
            view.services = app.state.services = services
            view.persisted.apq = ApqStore(services.redis, ttl_s=settings.apq_ttl_s)
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
            scheduler = getattr(app.state, "backup_scheduler", None)
            if scheduler is not None:
                await scheduler.stop()
            view.services = None
            view.persisted.apq = None
            await services.close()

    async def health(request: Request) -> JSONResponse:
        # The same bounded, parallel checks as /readyz (kept for existing monitors).
        return await readiness(request.app.state.services)

    application = Starlette(
        routes=[
            Route("/graphql", view, methods=["GET", "POST"]),
            Route("/healthz", health, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            metrics_route(settings),
            *graphiql_routes(settings, schema, schema_access=view.schema_access),
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
