"""Documents parsed and validated once: trusted ones at start, any other on first use.

A request for a trusted document (persisted/) carries its already prepared AST in the
context, so it skips both steps. Other query texts go through a bounded LRU cache: the
same few documents arrive again and again (measured: validation was half of a login's
CPU on the event loop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import (
    MaxIntrospectionDepthRule,
    NoSchemaIntrospectionCustomRule,
)
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types import ExecutionContext

CACHE_SIZE = 1000
DEFAULT_MAX_TOKENS = 3_000

if TYPE_CHECKING:
    from persisted.manifest import TrustedDocument

_RULES = (
    *specified_rules,
    # Nested `fields { type { fields ...` introspection grows exponentially.
    MaxIntrospectionDepthRule,
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)
_RULES_WITHOUT_INTROSPECTION = (*_RULES, NoSchemaIntrospectionCustomRule)


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode
    # Validation errors; empty when the document may run.
    errors: tuple[GraphQLError, ...]


# Keyed by the query text, whose hash Python caches, not by the AST: a frozen AST node
# hashes its whole tree on every lookup (measured: 21 µs for the patient chart).
@lru_cache(maxsize=CACHE_SIZE)
def prepare_document(
    schema: GraphQLSchema,
    query: str,
    *,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    introspection: bool = True,
) -> Prepared:
    """Parse (refusing documents over `max_tokens` before building a huge AST) and
    validate. A syntax error raises GraphQLError and is not cached."""
    document = parse(query, max_tokens=max_tokens)
    rules = _RULES if introspection else _RULES_WITHOUT_INTROSPECTION
    # max_errors bounds the work a pathologically invalid document can cause.
    return Prepared(document, tuple(validate(schema, document, rules, max_errors=20)))


class PreparedDocuments(SchemaExtension):
    """Parses and validates through the cache, or takes a trusted document's prepared AST.

    The token limit and the introspection rule are given when the schema is built, never
    looked up in the context: executing the bare schema applies them too."""

    def __init__(
        self,
        *,
        max_tokens: int,
        introspection: bool,
        execution_context: ExecutionContext | None = None,
    ) -> None:
        self.max_tokens, self.introspection = max_tokens, introspection

    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        trusted = _trusted_document(execution)
        if trusted is not None:
            execution.graphql_document = trusted.document
        elif execution.query:
            execution.graphql_document = self._prepared().document
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        if _trusted_document(execution) is not None:
            execution.pre_execution_errors = []  # validated when the manifest was built
        elif execution.query:
            execution.pre_execution_errors = list(self._prepared().errors)
        yield

    def _prepared(self) -> Prepared:
        execution = self.execution_context
        assert execution.query is not None
        return prepare_document(
            execution.schema._schema,
            execution.query,
            max_tokens=self.max_tokens,
            introspection=self.introspection,
        )


def _trusted_document(execution: ExecutionContext) -> TrustedDocument | None:
    """The trusted document the view resolved for this request (app.py), if any. A
    context without the attribute (direct execution) runs nothing unvalidated."""
    return getattr(execution.context, "trusted_document", None)
