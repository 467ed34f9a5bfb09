"""Who and how, for the audit records of one HTTP request."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.requests import Request

from audit.buffer import AuditBuffer
from audit.records import Actor, Channel
from auth.roles import Principal

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id(request: Request) -> str:
    """A proxy's X-Request-ID when it is well-formed (so logs line up), else a new one."""
    state_id = getattr(request.state, "request_id", None)
    if isinstance(state_id, str) and _REQUEST_ID.match(state_id):
        return state_id
    given = request.headers.get("x-request-id", "")
    return given if _REQUEST_ID.match(given) else uuid.uuid4().hex


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def open_audit(request: Request, principal: Principal | None) -> AuditBuffer:
    actor = Actor(
        user_id=str(principal.user_id) if principal else None,
        role=principal.role.value if principal else None,
    )
    channel = Channel(None, None, request_id(request), _client(request))
    request.state.audit_request_id = channel.request_id
    return AuditBuffer(actor, channel)


def phi_channel(request: Request, request_data: Any, resolution: Any) -> Channel:
    """The operation a request runs: its trusted document (by id) or its name."""
    trusted = getattr(resolution, "trusted", None)
    return Channel(
        operation=(trusted.name if trusted else None)
        or getattr(request_data, "operation_name", None),
        document_id=trusted.document_id if trusted else None,
        request_id=getattr(request.state, "audit_request_id", None) or request_id(request),
        client_address=_client(request),
    )
