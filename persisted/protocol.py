"""Which document a request runs: the persisted-query protocols and the document modes.

Follows the protocols real clients implement (statuses, codes and messages exactly):
- Apollo automatic persisted queries: `extensions.persistedQuery = {version: 1,
  sha256Hash}`; an unknown hash answers 200 PersistedQueryNotFound and the client
  retries with the query, which is stored once it validates.
- Trusted documents: `documentId: "sha256:<hex>"`, or an APQ hash of a document in
  queries/; in persisted-only mode nothing else runs (Apollo Router's error codes).

Modes (settings.document_mode): open runs any query; allow-list-audit runs any query
and logs the ones outside queries/; persisted-only runs trusted documents only, except
for callers whose role is in settings.freeform_roles (analysts in GraphiQL, say).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError, GraphQLSchema, OperationDefinitionNode
from strawberry.http import GraphQLRequestData

from datasources.redis.apq_store import ApqStore
from errors import HttpError
from persisted.manifest import Manifest, TrustedDocument, sha256_hex
from schema.documents import prepare_document
from settings import ALLOW_LIST_AUDIT, PERSISTED_ONLY, Settings

log = logging.getLogger("caregraph.documents")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Apollo clients retry on these and must be able to ask again: never cache them.
NOT_CACHEABLE = {"Cache-Control": "private, no-cache, must-revalidate"}


@dataclass
class OperationRequest(GraphQLRequestData):
    """A GraphQL-over-HTTP request, with the trusted-document id Strawberry doesn't read."""

    document_id: str | None = None

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> OperationRequest:
        """From a decoded JSON body or GET parameters, with the types checked."""
        query, variables = data.get("query"), data.get("variables")
        extensions, operation_name = data.get("extensions"), data.get("operationName")
        document_id = data.get("documentId")
        for name, value, expected in (
            ("query", query, str),
            ("variables", variables, dict),
            ("extensions", extensions, dict),
            ("operationName", operation_name, str),
            ("documentId", document_id, str),
        ):
            if value is not None and not isinstance(value, expected):
                kind = "a string" if expected is str else "an object"
                raise HttpError(400, f"`{name}` must be {kind} or null, if provided")
        return cls(
            query=query,
            variables=variables,
            operation_name=operation_name,
            extensions=extensions,
            document_id=document_id,
        )


@dataclass(frozen=True)
class Resolution:
    query: str
    trusted: TrustedDocument | None = None
    # The caller named the document by hash or id instead of sending its text: over
    # GET, without credentials, such a response may be cached by a CDN.
    by_reference: bool = False


class PersistedQueries:
    def __init__(
        self,
        *,
        manifest: Manifest,
        settings: Settings,
        schema: GraphQLSchema,
        apq: ApqStore | None = None,
    ) -> None:
        self.manifest, self.settings, self.schema, self.apq = manifest, settings, schema, apq

    def allows_free_form(self, role: str | None) -> bool:
        if self.settings.document_mode != PERSISTED_ONLY:
            return True
        return role is not None and role in self.settings.freeform_roles

    async def resolve(
        self, request: OperationRequest, *, method: str, role: str | None
    ) -> Resolution:
        persisted_query = (request.extensions or {}).get("persistedQuery")
        if request.document_id is not None:
            return self._by_document_id(request, has_hash=persisted_query is not None)
        free_form = self.allows_free_form(role)
        if persisted_query is not None:
            sha256 = _checked_hash(persisted_query)
            if request.query:
                if not free_form:
                    raise _id_and_body()
                return await self._register(sha256, request.query, method=method, role=role)
            return await self._by_hash(sha256, free_form=free_form, role=role)
        if not request.query:
            raise HttpError(
                400,
                "GraphQL operations must contain a non-empty `query` or a "
                "`persistedQuery` extension.",
            )
        trusted = self.manifest.by_body(request.query)
        if trusted is not None:
            return Resolution(trusted.body, trusted)
        if not free_form:
            raise HttpError(
                400,
                "This endpoint runs persisted queries only: send a documentId",
                code="PERSISTED_QUERY_ID_REQUIRED",
            )
        self._audit(request.query, role=role)
        return Resolution(request.query)

    def _by_document_id(self, request: OperationRequest, *, has_hash: bool) -> Resolution:
        if request.query or has_hash:
            raise _id_and_body()
        trusted = self.manifest.by_document_id(request.document_id or "")
        if trusted is None:
            raise _not_in_list()
        return Resolution(trusted.body, trusted, by_reference=True)

    async def _by_hash(self, sha256: str, *, free_form: bool, role: str | None) -> Resolution:
        trusted = self.manifest.by_hash(sha256)
        if trusted is not None:
            return Resolution(trusted.body, trusted, by_reference=True)
        if not free_form:
            raise _not_in_list()
        if not self.settings.apq_enabled or self.apq is None:
            raise _apq_not_supported()
        query = await self.apq.get(sha256)
        if query is None:
            raise HttpError(
                200,
                "PersistedQueryNotFound",
                code="PERSISTED_QUERY_NOT_FOUND",
                headers=NOT_CACHEABLE,
            )
        self._audit(query, role=role)
        return Resolution(query, by_reference=True)

    async def _register(
        self, sha256: str, query: str, *, method: str, role: str | None
    ) -> Resolution:
        if sha256_hex(query) != sha256:
            raise HttpError(400, "provided sha does not match query")
        trusted = self.manifest.by_body(query)
        if trusted is not None:
            return Resolution(trusted.body, trusted)
        if not self.settings.apq_enabled or self.apq is None:
            raise _apq_not_supported()
        if self._storable(query, method=method):
            await self.apq.put(sha256, query)
        self._audit(query, role=role)
        return Resolution(query)

    def _storable(self, query: str, *, method: str) -> bool:
        """Only documents that parse and validate are stored (execution reports why
        the others fail), and no mutation over GET, which is refused."""
        try:
            prepared = prepare_document(
                self.schema,
                query,
                max_tokens=self.settings.max_tokens,
                introspection=self.settings.introspection,
            )
        except GraphQLError:
            return False
        if prepared.errors:
            return False
        operations = [
            d for d in prepared.document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        return method != "GET" or all(op.operation.value == "query" for op in operations)

    def _audit(self, query: str, *, role: str | None) -> None:
        if self.settings.document_mode == ALLOW_LIST_AUDIT:
            log.warning(
                "operation outside the allow-list",
                extra={"sha256": sha256_hex(query), "role": role, "query": query[:2000]},
            )


def _checked_hash(persisted_query: Any) -> str:
    if not isinstance(persisted_query, dict) or persisted_query.get("version") != 1:
        raise HttpError(400, "Unsupported persisted query version")
    sha256 = persisted_query.get("sha256Hash")
    if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
        raise HttpError(400, "persistedQuery.sha256Hash must be a lowercase SHA-256 hex digest")
    return sha256


def _id_and_body() -> HttpError:
    return HttpError(
        400,
        "Send either a persisted query id or a query body, not both",
        code="CANNOT_SEND_PQ_ID_AND_BODY",
    )


def _not_in_list() -> HttpError:
    return HttpError(
        404, "PersistedQueryNotInList", code="PERSISTED_QUERY_NOT_IN_LIST", headers=NOT_CACHEABLE
    )


def _apq_not_supported() -> HttpError:
    return HttpError(
        200,
        "PersistedQueryNotSupported",
        code="PERSISTED_QUERY_NOT_SUPPORTED",
        headers=NOT_CACHEABLE,
    )
