"""Trusted documents: the operations in queries/, compiled into a manifest at start.

Each file holds one named operation, named like the file. The manifest parses and
validates every document once, against the schema and the operation limits, so a
request for one skips both steps. A broken document stops the server from starting
rather than failing for the first user who needs it.

A document is addressed by `documentId` ("sha256:<hex>", the GraphQL-over-HTTP
draft) or by the same hex as an APQ `sha256Hash`; both are the SHA-256 of the file's
exact text, which is also the `body` in the Apollo manifest format.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode

from schema.documents import prepare_document
from schema.limits import Limits, limit_errors, measure

DOCUMENT_ID_PREFIX = "sha256:"


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class TrustedDocument:
    name: str
    operation_type: str  # "query" | "mutation"
    body: str
    sha256: str
    document: DocumentNode

    @property
    def document_id(self) -> str:
        return DOCUMENT_ID_PREFIX + self.sha256


class ManifestError(Exception):
    """One or more files in queries/ are not valid trusted documents."""


@dataclass(frozen=True)
class Manifest:
    documents: tuple[TrustedDocument, ...]
    # Lookups over `documents`, built once (not arguments, not part of equality).
    _by_hash: dict[str, TrustedDocument] = field(init=False, repr=False, compare=False)
    _by_body: dict[str, TrustedDocument] = field(init=False, repr=False, compare=False)
    _by_name: dict[str, TrustedDocument] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_hash", {d.sha256: d for d in self.documents})
        object.__setattr__(self, "_by_body", {d.body: d for d in self.documents})
        object.__setattr__(self, "_by_name", {d.name: d for d in self.documents})

    def by_hash(self, sha256: str) -> TrustedDocument | None:
        return self._by_hash.get(sha256)

    def by_document_id(self, document_id: str) -> TrustedDocument | None:
        if not document_id.startswith(DOCUMENT_ID_PREFIX):
            return None
        return self.by_hash(document_id.removeprefix(DOCUMENT_ID_PREFIX))

    def by_body(self, body: str) -> TrustedDocument | None:
        return self._by_body.get(body)

    def by_name(self, name: str) -> TrustedDocument | None:
        return self._by_name.get(name)

    def to_json(self) -> dict[str, Any]:
        """The Apollo persisted query manifest format, for clients and routers."""
        return {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": d.sha256, "name": d.name, "type": d.operation_type, "body": d.body}
                for d in self.documents
            ],
        }


def manifest_for(settings: Any, schema: GraphQLSchema) -> Manifest:
    """The manifest a deployment with these settings serves (the app and the CLI)."""
    return build_manifest(
        settings.queries_dir,
        schema,
        limits=Limits.from_settings(settings),
        max_tokens=settings.max_tokens,
        introspection=settings.introspection,
    )


def build_manifest(
    queries_dir: Path,
    schema: GraphQLSchema,
    *,
    limits: Limits,
    max_tokens: int,
    introspection: bool,
) -> Manifest:
    documents, problems = [], []
    for path in sorted(queries_dir.glob("*.graphql")):
        try:
            documents.append(
                _compile(
                    path, schema, limits=limits, max_tokens=max_tokens, introspection=introspection
                )
            )
        except (GraphQLError, ValueError) as error:
            problems.append(f"{path.name}: {error}")
    if problems:
        raise ManifestError("Invalid trusted documents:\n  " + "\n  ".join(problems))
    return Manifest(tuple(documents))


def _compile(
    path: Path,
    schema: GraphQLSchema,
    *,
    limits: Limits,
    max_tokens: int,
    introspection: bool,
) -> TrustedDocument:
    body = path.read_text(encoding="utf-8")
    prepared = prepare_document(schema, body, max_tokens=max_tokens, introspection=introspection)
    document = prepared.document
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = operations[0] if len(operations) == 1 else None
    if operation is None or operation.name is None:
        raise ValueError("a trusted document holds exactly one named operation")
    if operation.name.value != path.stem:
        raise ValueError(f"the operation is named {operation.name.value}, the file {path.stem}")
    if prepared.errors:
        raise ValueError("; ".join(error.message for error in prepared.errors))
    # Variables are unknown here: page sizes given as variables count at their defaults.
    over_limits = limit_errors(
        measure(schema, document, operation, variables={}, limits=limits), limits
    )
    if over_limits:
        raise ValueError("; ".join(error.message for error in over_limits))
    return TrustedDocument(
        name=path.stem,
        operation_type=operation.operation.value,
        body=body,
        sha256=sha256_hex(body),
        document=document,
    )
