"""Strawberry's ASGI view, extended through its documented hooks only.

By the time a request reaches the view, web/graphql_endpoint.py has read it, signed the
caller in and resolved which document it runs (persisted queries), and left all three in
`request.state`. The view builds the resolvers' Context from them (`get_context`) and,
once the operation has run, decides what may leave (`process_result`): PHI only after its
audit record is stored, a 503 when a dependency lost the whole answer, CDN caching only
for anonymous GETs by reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from audit.request import open_audit, phi_channel
from auth.roles import Principal
from context import Context
from datasources.audit_log import AuditUnavailable
from datasources.phi_access import AuditWriter, BulkExportRefused, finish_request
from datasources.scope import AccessScope
from errors import HttpError, format_error
from observability import metrics
from persisted.protocol import OperationRequest, Resolution
from runtime.request_guard import mark_unavailable
from runtime.services import Services
from schema import CareGraphSchema
from settings import Settings

log = logging.getLogger("caregraph")


@dataclass(frozen=True)
class Admitted:
    """What the endpoint established about a request before Strawberry runs it."""

    principal: Principal | None
    # Why a presented token was refused (expired, revoked, ...), for the error message.
    auth_error: str | None
    operation: OperationRequest
    resolution: Resolution

    def store(self, request: Request) -> None:
        request.state.admitted = self

    @staticmethod
    def of(request: Request) -> Admitted:
        admitted = getattr(request.state, "admitted", None)
        if not isinstance(admitted, Admitted):
            # The view is only mounted behind GraphQLEndpoint: never run unadmitted.
            raise RuntimeError("a request reached the GraphQL view without admission")
        return admitted


class CareGraphView(GraphQL[Context, None]):
    def __init__(self, settings: Settings, schema: CareGraphSchema) -> None:
        super().__init__(
            schema,
            # GraphiQL is served by the endpoint (web/graphql_endpoint.py), which knows
            # a persisted-query GET from a browser's page load.
            graphql_ide=None,
            # The schema has no subscriptions: no WebSocket protocol is offered at all.
            subscription_protocols=(),
            multipart_uploads_enabled=False,
        )
        self.settings = settings
        self.services: Services | None = None  # set by the app lifespan

    def _services(self) -> Services:
        if self.services is None:
            raise HttpError(503, "The server is starting or stopping", code="SERVICE_UNAVAILABLE")
        return self.services

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        if not isinstance(request, Request) or not isinstance(response, Response):
            # No WebSocket protocol is offered (subscription_protocols=()).
            raise RuntimeError("CareGraph serves GraphQL over HTTP only")
        services, admitted = self._services(), Admitted.of(request)
        principal = admitted.principal
        scope = AccessScope(principal, services.db)
        context = Context(
            request=request,
            response=response,
            settings=self.settings,
            sources=services.data_sources(scope),
            accounts=services.accounts(),
            directory=services.directory(),
            principal=principal,
            auth_error=admitted.auth_error,
            reports=services.reports_for(principal),
            integrity_alarms=services.integrity_alarms(principal),
            knowledge=services.knowledge,
            safety=services.safety(scope),
            trusted_document=admitted.resolution.trusted,
            audit_trail=services.audit_trail(principal),
            emergency=services.emergency_access(principal),
        )
        if self.settings.audit_enabled and services.audit_log is not None:
            context.audit = open_audit(request, principal)
            context.audit.channel = phi_channel(request, admitted.operation, admitted.resolution)
            scope.audit = AuditWriter(services.db, services.audit_log, context.audit, scope)
        # process_result sees the request, not the context.
        request.state.context = context
        return context

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        services, admitted = self._services(), Admitted.of(request)
        context: Context = request.state.context
        resolution = admitted.resolution
        metrics.observe_operation(
            operation=resolution.trusted.name
            if resolution.trusted
            else metrics.operation_name(admitted.operation.operation_name, resolution.query),
            by_reference=resolution.by_reference,
            trusted=resolution.trusted is not None,
            report_hits=[outcome.hit for outcome in context.report_outcomes],
            result=result,
        )
        if mark_unavailable(services, result, context.response.headers):
            context.response.status_code = 503
        await self._deliver_phi_or_refuse(services, context, result)
        if self._publicly_cacheable(request, resolution, result):
            context.response.headers["cache-control"] = (
                f"public, max-age={self.settings.public_cache_max_age_s}"
            )
            context.response.headers["vary"] = "Authorization, Cookie"
        return self._formatted(result, context)

    def _formatted(self, result: ExecutionResult, context: Context) -> GraphQLHTTPResponse:
        response: GraphQLHTTPResponse = {"data": result.data}
        if result.errors:
            errors = [
                format_error(error, hide_suggestions=self.settings.production)
                for error in result.errors
            ]
            metrics.count_errors(errors)
            response["errors"] = list[object](errors)
        extensions: dict[str, object] = dict(result.extensions or {})
        if context.report_outcomes:
            # Says, per report field, whether it came from the cache.
            extensions["reportCache"] = [
                {
                    "report": o.report,
                    "hit": o.hit,
                    **({"bypassed": o.bypassed} if o.bypassed else {}),
                }
                for o in context.report_outcomes
            ]
        if extensions:
            response["extensions"] = extensions
        return response

    async def _deliver_phi_or_refuse(
        self, services: Services, context: Context, result: ExecutionResult
    ) -> None:
        """Fail closed: PHI leaves only after its audit record is stored and the caller
        is within the bulk-export budget (datasources/phi_access.py)."""
        if context.audit is None or services.audit_log is None:
            return
        try:
            if any(isinstance(e.original_error, AuditUnavailable) for e in result.errors or []):
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
    def _publicly_cacheable(
        request: Request, resolution: Resolution, result: ExecutionResult
    ) -> bool:
        """A CDN may keep a GET by hash or id whose answer cannot depend on who asks."""
        return (
            request.method == "GET"
            and resolution.by_reference
            and "authorization" not in request.headers
            and "cookie" not in request.headers
            and not result.errors
        )

    def decode_json(self, data: str | bytes) -> Any:
        # orjson, not json.loads: it refuses (JSONDecodeError, so a 400) what json.loads
        # lets through to fail later as a 500: lone surrogates ("\ud800"), which no store
        # or hash can encode, and nesting deep enough to raise RecursionError.
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)
