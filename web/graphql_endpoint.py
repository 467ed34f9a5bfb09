"""The /graphql endpoint: the one step between HTTP and Strawberry.

Per request, in order:
1. the request guard (deadline, dependency circuits) and Idempotency-Key replay;
2. sign the caller in from `Authorization` (auth/authenticate.py);
3. a browser's page load gets GraphiQL; anything else is read as GraphQL over HTTP:
   JSON bodies only (CSRF: browsers post forms and text/plain cross-site without a
   preflight), one operation per request, fields of the right JSON types;
4. resolve which document it runs (persisted/protocol.py: trusted documents, APQ, the
   document mode), so Strawberry always receives the plain `{query, variables, ...}` of
   GraphQL over HTTP;
5. hand it to the view (web/graphql_view.py) with what was established in
   `request.state`, and turn every refusal into JSON with an `extensions.code`.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send
from strawberry.schema.exceptions import InvalidOperationTypeError

from auth.authenticate import authenticate
from auth.roles import Principal
from datasources.redis.apq_store import ApqStore
from datasources.scope import AccessScope
from datasources.users import UserStore
from errors import HttpError
from observability import metrics
from observability.logs import with_request_id
from persisted.manifest import manifest_for
from persisted.protocol import OperationRequest, PersistedQueries, Resolution
from runtime.dependencies import DependencyDown
from runtime.idempotency import IdempotentRequests
from runtime.request_guard import refuse_if_down, request_guard
from runtime.services import Services
from schema import CareGraphSchema
from settings import Settings
from web.graphiql import render_graphiql
from web.graphql_view import Admitted, CareGraphView


class GraphQLEndpoint:
    def __init__(self, settings: Settings, schema: CareGraphSchema) -> None:
        self.settings = settings
        self.view = CareGraphView(settings, schema)
        self.services: Services | None = None
        # Built here, not per request: a broken file in queries/ stops the start.
        manifest = manifest_for(settings, schema._schema)
        self.persisted = PersistedQueries(
            manifest=manifest, settings=settings, schema=schema._schema
        )
        # The trusted Login document's id, for GraphiQL's sign-in form (None: send its text).
        login = manifest.by_name("Login")
        self.login_document_id: str | None = login.document_id if login else None

    def attach(self, services: Services | None) -> None:
        """Called by the app lifespan once the services are open (None: closing)."""
        self.services = self.view.services = services
        self.persisted.apq = (
            ApqStore(services.redis, ttl_s=self.settings.apq_ttl_s) if services else None
        )

    def _services(self) -> Services:
        if self.services is None:
            raise HttpError(503, "The server is starting or stopping", code="SERVICE_UNAVAILABLE")
        return self.services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        services = self._services()
        send = with_request_id(scope, send)
        try:
            async with request_guard(services, scope):
                if services.idempotency is not None and IdempotentRequests.applies(scope):
                    return await services.idempotency.serve(scope, receive, send, self._answer)
                return await self._answer(scope, receive, send)
        except DependencyDown as error:
            metrics.observe_refusal(error.code, "unavailable")
            await error_response(error)(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            response = await self._respond(Request(scope, receive))
        except HttpError as error:
            if not isinstance(error, DependencyDown):
                metrics.observe_refusal(error.code, "refused")
            response = error_response(error)
        except HTTPException as error:
            # Strawberry's own refusals: JSON, with a code.
            if isinstance(error.__cause__, InvalidOperationTypeError):
                # GET must stay safe (links, prefetches, CDNs): mutations need POST.
                response = error_response(
                    HttpError(
                        405, "Mutations are only accepted over POST", headers={"Allow": "POST"}
                    )
                )
            else:
                response = error_response(HttpError(error.status_code, error.reason))
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        services = self._services()
        # Every request reads MongoDB (the caller's account at least): refuse at once
        # while it is known to be down, instead of waiting out server selection.
        refuse_if_down(services, "mongodb")
        principal, auth_error = await self._sign_in(request, services)
        if _wants_graphiql(request):
            if not self.settings.graphiql:
                raise HttpError(404, "Not Found")
            return render_graphiql(
                self.login_document_id, schema_needs_token=not self.settings.introspection
            )
        operation = await self._read_operation(request)
        resolution = await self.persisted.resolve(
            operation,
            method=request.method,
            role=principal.role.value if principal else None,
        )
        Admitted(principal, auth_error, operation, resolution).store(request)
        return await self.view.run(_as_plain_graphql(request, operation, resolution))

    async def _sign_in(
        self, request: Request, services: Services
    ) -> tuple[Principal | None, str | None]:
        """Who `Authorization` names, or why its token was refused (None, None: anonymous)."""
        return await authenticate(
            request.headers.get("authorization"),
            tokens=services.tokens,
            users=UserStore(services.db, AccessScope.system()),
        )

    async def _read_operation(self, request: Request) -> OperationRequest:
        content_type = (request.headers.get("content-type") or "").split(";", 1)[0]
        if request.method == "GET":
            data: object = self.view.parse_query_params(request.query_params)
        elif content_type.strip().lower() == "application/json":
            data = self.view.parse_json(await request.body())
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
        if not isinstance(data, dict):
            # A bare number, string or null is no GraphQL request.
            raise HttpError(400, "The request body must be a JSON object")
        return OperationRequest.from_payload(data)

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
        services = self._services()
        principal, auth_error = await self._sign_in(request, services)
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


def error_response(error: HttpError) -> Response:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


def _wants_graphiql(request: Request) -> bool:
    """A browser's page load. Not `Accept: */*` without a `query`, which Strawberry
    counts: that would answer a persisted-query GET (hash or documentId only) with HTML."""
    params = request.query_params
    return (
        request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and not any(name in params for name in ("query", "extensions", "documentId"))
    )


def _as_plain_graphql(
    request: Request, operation: OperationRequest, resolution: Resolution
) -> Request:
    """The same request carrying the resolved document as plain GraphQL over HTTP: in
    the query string for GET (so Strawberry still refuses mutations there), as a JSON
    body for POST. `request.state` is shared, so the view sees what was admitted."""
    payload: dict[str, object] = {"query": resolution.query}
    if operation.operation_name is not None:
        payload["operationName"] = operation.operation_name
    if operation.variables is not None:
        payload["variables"] = operation.variables
    if operation.extensions is not None:
        payload["extensions"] = operation.extensions
    scope: Scope = dict(request.scope)
    if request.method == "GET":
        scope["query_string"] = urlencode(
            {
                name: value if isinstance(value, str) else orjson.dumps(value).decode()
                for name, value in payload.items()
            }
        ).encode()
        return Request(scope, request.receive)
    body = orjson.dumps(payload)
    scope["headers"] = [
        (name, value)
        for name, value in request.scope["headers"]
        if name not in (b"content-length", b"content-type")
    ] + [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await request.receive()  # only a disconnect can follow
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(scope, receive)
