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

CACHE_SIZE = 1000
# graphql-core's defaults, for callers without settings (scripts, direct execution).
DEFAULT_MAX_TOKENS = 3_000

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
    def on_parse(self) -> Iterator[None]:
        execution = self.execution_context
        trusted = getattr(execution.context, "trusted_document", None)
        if trusted is not None:
            execution.graphql_document = trusted.document
        elif execution.query:
            execution.graphql_document = self._prepared().document
        yield

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        if getattr(execution.context, "trusted_document", None) is not None:
            execution.pre_execution_errors = []  # validated when the manifest was built
        elif execution.query:
            execution.pre_execution_errors = list(self._prepared().errors)
        yield

    def _prepared(self) -> Prepared:
        execution = self.execution_context
        settings = getattr(execution.context, "settings", None)
        return prepare_document(
            execution.schema._schema,
            execution.query,
            max_tokens=settings.max_tokens if settings else DEFAULT_MAX_TOKENS,
            introspection=settings.introspection if settings else True,
        )
