"""Errors a client may see. Each carries the `extensions.code` a frontend can switch on.

Anything else raised while resolving is a bug: its message is masked as
INTERNAL_SERVER_ERROR and the details go to the log, never to the client.
"""

from __future__ import annotations

import re
from typing import Any

# graphql-core adds hints that reveal the schema ("Did you mean 'ssn'?"), not always at
# the end: a variable's unknown input field is followed by "Found: {...}". GraphQL
# names hold no "?", so a hint ends at the first one.
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class CareGraphError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extensions = {k: v for k, v in extensions.items() if v is not None}


class BadUserInput(CareGraphError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None, **extensions: Any) -> None:
        super().__init__(message, field=field, **extensions)


class NotFound(CareGraphError):
    code = "NOT_FOUND"

    def __init__(self, entity: str, entity_id: str) -> None:
        super().__init__(f"{entity} {entity_id!r} was not found", entity=entity, id=entity_id)


class Conflict(CareGraphError):
    code = "CONFLICT"


class Forbidden(CareGraphError):
    code = "FORBIDDEN"


class Unauthenticated(CareGraphError):
    code = "UNAUTHENTICATED"


def _request_error_code(message: str) -> str:
    """graphql-core has no error codes: classify parse/validation/coercion messages."""
    if message.startswith("Syntax Error"):
        if "tokens. Parsing aborted" in message:
            return "MAX_TOKENS_LIMIT"
        return "GRAPHQL_PARSE_FAILED"
    bad_value_markers = (
        "got invalid value",  # graphql-core 3.2
        "has invalid value",  # graphql-core 3.3
        "does not exist in",  # unknown enum value
        "Expected value of type",
        "is not defined by type",
        "of required type",
        "of non-null type",
        "cannot represent",
    )
    if any(marker in message for marker in bad_value_markers):
        return "BAD_USER_INPUT"
    return "GRAPHQL_VALIDATION_FAILED"


def format_error(error: Any, *, hide_suggestions: bool = False) -> dict[str, Any]:
    """The JSON a client sees for one GraphQLError: always with `extensions.code`.

    hide_suggestions (production): drop graphql-core's "Did you mean ...?" hints, which
    would let a caller without introspection discover field and type names.
    """
    formatted = dict(error.formatted)
    original = error.original_error
    if isinstance(original, CareGraphError):
        extensions = {"code": original.code, **original.extensions}
    elif error.path is None and (original is None or error.nodes):
        # Raised before execution (parse, validation, limits, variable coercion): the
        # message describes the client's request and is safe to return.
        extensions = dict(error.extensions or {})
        extensions.setdefault("code", _request_error_code(error.message))
        if hide_suggestions:
            formatted["message"] = _SUGGESTION.sub("", formatted["message"])
    elif original is None:
        extensions = {"code": "INTERNAL_SERVER_ERROR", **(error.extensions or {})}
        extensions.setdefault("code", "INTERNAL_SERVER_ERROR")
    else:
        from runtime.dependencies import ServiceUnavailable, dependency_of

        dependency = dependency_of(original)
        if dependency is not None:
            # An outage, not a bug: the client should retry later.
            unavailable = ServiceUnavailable(dependency)
            formatted["message"] = unavailable.message
            extensions = {"code": unavailable.code, **unavailable.extensions}
        else:
            formatted["message"] = "Internal server error"
            extensions = {"code": "INTERNAL_SERVER_ERROR"}
    formatted["extensions"] = extensions
    return formatted


class HttpError(Exception):
    """A request refused before GraphQL runs (protocol, persisted queries, CSRF rules).

    Persisted-query clients switch on exact statuses and codes, so each refusal says
    both; `headers` carries what the protocol requires (Allow, Cache-Control).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str = "BAD_REQUEST",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"errors": [{"message": self.message, "extensions": {"code": self.code}}]}
