"""The CDS Hooks 2.0 service: discovery, the order-select and order-sign hooks, feedback.

External prescribing systems call it with a bearer token: a CareGraph access token, or a
JWT signed by a client key configured in CAREGRAPH_CDS_CLIENTS (the CDS Hooks client
authorization scheme). Either way the caller is a Principal, and the same access policy
as GraphQL applies: the roles allowed `medicationSafetyCheck`, and the patient row scope.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
from bson import ObjectId
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.authenticate import authenticate
from auth.policy import Anyone, field_readers
from auth.roles import Principal, Role
from cds.cards import card
from cds.fhir import BadRequest, DraftOrder, parse_draft_orders
from datasources.scope import AccessScope
from datasources.users import UserStore
from safety import check
from safety.model import MedicationRecord, Snapshot

log = logging.getLogger(__name__)
BASE = "/cds-services"
SERVICES: dict[str, dict[str, Any]] = {
    "caregraph-medication-select": {
        "hook": "order-select",
        "title": "CareGraph medication safety (order select)",
        "description": "Allergy, interaction, contraindication, duplicate-therapy and dose "
        "alerts for the medication orders just selected, against the patient's record.",
        "prefetch": {"patient": "Patient/{{context.patientId}}"},
        "usageRequirements": "Send context.draftOrders as a FHIR R4 Bundle of "
        "MedicationRequest coded with RxNorm.",
    },
    "caregraph-medication-sign": {
        "hook": "order-sign",
        "title": "CareGraph medication safety (order sign)",
        "description": "The same checks over every draft medication order, before signing.",
        "prefetch": {"patient": "Patient/{{context.patientId}}"},
        "usageRequirements": "Send context.draftOrders as a FHIR R4 Bundle of "
        "MedicationRequest coded with RxNorm.",
    },
}
FEEDBACK_OUTCOMES = {"accepted", "overridden"}


class Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _error(status: int, message: str, details: list[str] | None = None, headers=None) -> Response:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    return _json(body, status, headers)


async def discovery(request: Request) -> Response:
    return _json({"services": [{"id": key, **value} for key, value in SERVICES.items()]})


async def _principal(request: Request) -> Principal:
    services = request.app.state.services
    header = request.headers.get("authorization")
    challenge = {"WWW-Authenticate": "Bearer"}
    if not header:
        raise Refused(401, "Authorization: Bearer <token> is required", challenge)
    principal, error = await authenticate(
        header, tokens=services.tokens, users=UserStore(services.db, AccessScope.system())
    )
    if principal is not None:
        return principal
    client = _client_principal(header, request, services.settings.cds_clients)
    if client is not None:
        return client
    raise Refused(401, error or "invalid token", challenge)


def _client_principal(
    header: str, request: Request, clients: dict[str, dict[str, str]]
) -> Principal | None:
    """A CDS client's own JWT (iss names a configured client; aud is this endpoint)."""
    token = header.partition(" ")[2].strip()
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        return None
    if not isinstance(issuer, str):
        return None
    client = clients.get(issuer)
    if client is None:
        return None
    audience = str(request.url.replace(query="")).rstrip("/")
    try:
        jwt.decode(
            token,
            client["key"],
            algorithms=[client.get("algorithm", "RS384")],
            audience=[audience, audience.rsplit("/feedback", 1)[0]],
            issuer=issuer,
            options={"require": ["exp", "iat", "jti", "iss", "aud"]},
        )
    except jwt.PyJWTError as error:
        raise Refused(
            401, f"CDS client token refused: {error}", {"WWW-Authenticate": "Bearer"}
        ) from None
    digest = hashlib.sha256(issuer.encode()).digest()[:12]
    return Principal(
        user_id=ObjectId(digest), role=Role(client.get("role", "PHARMACIST")), mfa_verified=True
    )


def _require_policy(principal: Principal) -> None:
    allowed = field_readers("Query", "medicationSafetyCheck")
    if isinstance(allowed, Anyone):  # a PUBLIC field: anyone may call, as in HasRole
        return
    role = principal.effective_role
    if role is None or role not in allowed:
        raise Refused(403, f"role {principal.role.value} may not run medication safety checks")


async def _body(request: Request) -> dict[str, Any]:
    content_type = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise BadRequest("send the request as application/json")
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as error:
        raise BadRequest(f"the body is not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _string(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{where}{key} is required (a non-empty string)")
    return value


async def call_service(request: Request) -> Response:
    service_id = request.path_params["service_id"]
    service = SERVICES.get(service_id)
    if service is None:
        return _error(404, f"no CDS service {service_id!r}; see GET {BASE}")
    try:
        principal = await _principal(request)
        _require_policy(principal)
        body = await _body(request)
        hook = _string(body, "hook", "")
        if hook != service["hook"]:
            raise BadRequest(f"service {service_id} answers the {service['hook']} hook, not {hook}")
        hook_instance = _string(body, "hookInstance", "")
        context = body.get("context")
        if not isinstance(context, dict):
            raise BadRequest("context is required (an object)")
        patient = _string(context, "patientId", "context.")
        services = request.app.state.services
        today = datetime.now(UTC).date()
        orders = parse_draft_orders(context.get("draftOrders"), services.knowledge, today)
        selected = _selected(context, orders, hook)
        try:
            patient_id = ObjectId(patient)
        except Exception:  # noqa: BLE001 - any malformed id is the client's error
            raise BadRequest("context.patientId is not a CareGraph patient id") from None
        safety = services.safety(AccessScope(principal, services.db))
        snapshot = await safety.snapshot(patient_id)
        if snapshot is None:
            raise Refused(404, f"patient {patient} was not found")
    except BadRequest as error:
        return _error(400, error.message, error.details)
    except Refused as refused:
        return _error(refused.status, refused.message, headers=refused.headers)
    cards = []
    for order in selected:
        # The other draft orders count as concurrent: two new orders can interact.
        others = tuple(
            MedicationRecord(
                id=o.reference,
                drug=o.draft.drug,
                start=o.draft.start,
                end=o.draft.end,
                status="ACTIVE",
            )
            for o in orders
            if o is not order
        )
        with_drafts = Snapshot(
            age=snapshot.age,
            sex=snapshot.sex,
            pregnant=snapshot.pregnant,
            conditions=snapshot.conditions,
            allergies=snapshot.allergies,
            medications=snapshot.medications + others,
        )
        for alert in check(with_drafts, order.draft, services.knowledge):
            cards.append(card(alert, order, hook_instance, services.knowledge))
    return _json({"cards": cards})


def _selected(context: dict[str, Any], orders: list[DraftOrder], hook: str) -> list[DraftOrder]:
    if hook != "order-select":
        return orders
    selections = context.get("selections")
    if not isinstance(selections, list) or not all(isinstance(s, str) for s in selections):
        raise BadRequest("context.selections is required for order-select (a list of references)")
    by_reference = {o.reference: o for o in orders}
    unknown = [s for s in selections if s not in by_reference]
    if unknown:
        raise BadRequest(f"context.selections name orders not in draftOrders: {unknown}")
    return [by_reference[s] for s in selections]


async def feedback(request: Request) -> Response:
    service_id = request.path_params["service_id"]
    if service_id not in SERVICES:
        return _error(404, f"no CDS service {service_id!r}; see GET {BASE}")
    try:
        principal = await _principal(request)
        _require_policy(principal)
        body = await _body(request)
        items = body.get("feedback")
        if not isinstance(items, list) or not items:
            raise BadRequest("feedback is required (a non-empty list)")
        records = [_feedback_record(item, i, service_id, principal) for i, item in enumerate(items)]
    except BadRequest as error:
        return _error(400, error.message, error.details)
    except Refused as refused:
        return _error(refused.status, refused.message, headers=refused.headers)
    await request.app.state.services.db["cds_feedback"].insert_many(records)
    return _json({})


def _feedback_record(
    item: object, index: int, service_id: str, principal: Principal
) -> dict[str, Any]:
    where = f"feedback[{index}]."
    if not isinstance(item, dict):
        raise BadRequest(f"feedback[{index}] must be an object")
    outcome = _string(item, "outcome", where)
    if outcome not in FEEDBACK_OUTCOMES:
        raise BadRequest(f"{where}outcome must be one of {sorted(FEEDBACK_OUTCOMES)}")
    timestamp = _string(item, "outcomeTimestamp", where)
    try:
        at = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{where}outcomeTimestamp is not an ISO 8601 instant") from None
    override = item.get("overrideReason")
    if override is not None and not isinstance(override, dict):
        raise BadRequest(f"{where}overrideReason must be an object")
    accepted = item.get("acceptedSuggestions", [])
    if not isinstance(accepted, list):
        raise BadRequest(f"{where}acceptedSuggestions must be a list")
    return {
        "serviceId": service_id,
        "card": _string(item, "card", where),
        "outcome": outcome,
        "outcomeTimestamp": at,
        "overrideReason": (override or {}).get("reason"),
        "userComment": (override or {}).get("userComment"),
        "acceptedSuggestions": [s.get("id") for s in accepted if isinstance(s, dict)],
        "by": str(principal.user_id),
        "role": principal.role.value,
        "at": datetime.now(UTC),
    }


def cds_routes() -> list[Route]:
    return [
        Route(BASE, discovery, methods=["GET"]),
        Route(BASE + "/{service_id}", call_service, methods=["POST"]),
        Route(BASE + "/{service_id}/feedback", feedback, methods=["POST"]),
    ]
