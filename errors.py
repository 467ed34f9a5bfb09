"""Errors a client may see. Each carries the `extensions.code` a frontend can switch on.

Anything else raised while resolving is a bug: its message is masked as
INTERNAL_SERVER_ERROR and the details go to the log, never to the client.
"""

from __future__ import annotations

from typing import Any


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


def format_error(error: Any) -> dict[str, Any]:
    """The JSON a client sees for one GraphQLError: always with `extensions.code`."""
    formatted = dict(error.formatted)
    original = error.original_error
    if isinstance(original, CareGraphError):
        extensions = {"code": original.code, **original.extensions}
    elif error.path is None:
        # Raised before execution (parse, validation, variable coercion): the message
        # describes the client's request and is safe to return.
        extensions = {"code": _request_error_code(error.message)}
    elif original is None:
        extensions = {"code": "INTERNAL_SERVER_ERROR", **(error.extensions or {})}
        extensions.setdefault("code", "INTERNAL_SERVER_ERROR")
    else:
        formatted["message"] = "Internal server error"
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
    formatted["extensions"] = extensions
    return formatted
