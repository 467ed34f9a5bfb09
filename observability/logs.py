"""Structured JSON logs: one object per line, with the request id and operation name.

Never PHI. Our own messages name ids and codes, not people; what could carry PHI is
what we do not write ourselves:
- exception messages (a duplicate-key error quotes the value: an email), so an
  exception is logged as its type chain and stack frames, never its message;
- uvicorn's access log (a GET's query string holds variables), which `caregraph serve`
  turns off: the access line below logs method, path, operation, outcome and time.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson
from starlette.types import Message, Scope, Send

from observability import metrics

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("caregraph.access")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is a plain token (so a proxy's id links the
    logs), else a new random one."""
    for name, value in headers:
        if name.lower() == b"x-request-id":
            text = value.decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return secrets.token_hex(8)


def _exception_summary(
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> dict[str, Any]:
    chain: list[str] = []
    current = exc
    while current is not None and len(chain) < 5:
        chain.append(f"{type(current).__module__}.{type(current).__qualname__}")
        current = current.__cause__ or current.__context__
    frames = [
        f"{frame.filename.rsplit('/site-packages/', 1)[-1]}:{frame.lineno} in {frame.name}"
        for frame in traceback.extract_tb(tb)[-12:]
    ]
    return {"types": chain, "frames": frames}


# Driver loggers that quote documents and parameters (PyMongo's command log at DEBUG
# includes whole replies; SQLAlchemy's engine log includes bound values).
PHI_CARRYING_LOGGERS = ("pymongo.command", "sqlalchemy.engine")


class DropPhiCarryingRecords(logging.Filter):
    """Attached to the handler, so no log level setting can let them through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(PHI_CARRYING_LOGGERS)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        stats = metrics.current()
        if stats is not None:
            entry["requestId"] = stats.request_id
            if stats.operation:
                entry["operation"] = stats.operation
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = _exception_summary(*record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(log_format: str = "json", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(DropPhiCarryingRecords())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own loggers go through ours; its access log (query strings) stays off.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def log_access(method: str, path: str, duration_s: float) -> None:
    stats = metrics.current()
    access_log.info(
        "request",
        extra={
            "fields": {
                "method": method,
                "path": path,  # the path only: a query string may hold variables
                "outcome": stats.outcome if stats else None,
                "durationMs": round(duration_s * 1000, 1),
            }
        },
    )


def with_request_id(scope: Scope, send: Send) -> Send:
    """Give the request its id (scope state, for the logs) and echo it in X-Request-ID."""
    request_id = request_id_from(scope["headers"])
    scope.setdefault("state", {})["request_id"] = request_id

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            message = {**message, "headers": headers}
        await send(message)

    return sending
