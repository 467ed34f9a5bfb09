from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from audit.records import Action, Outcome
from auth.roles import Role
from datasources.ids import parse_id
from datasources.pagination import Page, PageRequest, decode_cursor, encode_cursor
from datasources.phi_access import PhiStores
from errors import Forbidden
from resolvers.common import Info, page_request
from schema import audit as types
from schema import validation as check
from schema.pagination import Connection, connection

From = Annotated[datetime | None, strawberry.argument(name="from", description="Inclusive start.")]
Before = Annotated[datetime | None, strawberry.argument(description="Exclusive end.")]


def _phi(info: Info) -> PhiStores:
    stores = info.context.phi
    assert stores is not None, "the PHI stores are opened with the app"
    return stores


async def _seq_page(
    info: Info, list_name: str, filter: dict[str, Any], request: PageRequest
) -> Page[dict[str, Any]]:
    before_seq = None
    if request.after:
        (before_seq,) = decode_cursor(request.after, list_name=list_name, types=(int,))
    rows = await _phi(info).audit_log.page(
        filter=filter, first=request.first, before_seq=before_seq
    )
    items = rows[: request.first]
    return Page(
        items=items,
        cursors=[encode_cursor([row["seq"]], list_name=list_name) for row in items],
        has_next_page=len(rows) > request.first,
    )


async def resolve_audit_events(
    info: Info,
    patient_id: strawberry.ID | None = None,
    actor_id: strawberry.ID | None = None,
    starts_from: From = None,
    before: Before = None,
    action: types.AuditAction | None = None,
    first: int | None = None,
    after: str | None = None,
) -> Connection[types.AuditEvent]:
    check.date_range(starts_from, before, start_field="from", end_field="before")
    filter: dict[str, Any] = {}
    if patient_id is not None:
        filter["patientIds"] = str(parse_id(patient_id, field="patientId"))
    if actor_id is not None:
        filter["actor.userId"] = str(parse_id(actor_id, field="actorId"))
    if starts_from or before:
        filter["recordedAt"] = {
            **({"$gte": starts_from} if starts_from else {}),
            **({"$lt": before} if before else {}),
        }
    if action is not None:
        filter["action"] = action.value
    page = await _seq_page(info, "auditEvents", filter, page_request(info, first, after))
    return connection(page, types.AuditEvent.from_record)


async def resolve_audit_integrity(info: Info) -> types.AuditIntegrity:
    return types.AuditIntegrity.from_verdict(await _phi(info).audit_log.verify())


def _staff_label(role: str | None) -> str:
    return {
        "ADMIN": "Hospital administration",
        "PHARMACIST": "Pharmacist",
        "ANALYST": "Analyst",
        "DOCTOR": "Doctor",
    }.get(role or "", "Staff")


async def resolve_my_access_log(
    info: Info, first: int | None = None, after: str | None = None
) -> Connection[types.AccessLogEntry]:
    principal = info.context.principal
    if principal is None or principal.role is not Role.PATIENT or principal.patient_id is None:
        raise Forbidden("only a patient account has an access log", reason="ROLE")
    me = str(principal.patient_id)
    # Someone else's access to my record; my own use of the app is not listed.
    filter = {"patientIds": me, "actor.userId": {"$ne": str(principal.user_id)}}
    page = await _seq_page(info, "myAccessLog", filter, page_request(info, first, after))
    # Doctors by name; other staff by role (their accounts have no public name).
    names = await info.context.directory.staff_names(
        user_ids={r["actor"]["userId"] for r in page.items if r["actor"]["userId"]}
    )

    def entry(record: dict[str, Any]) -> types.AccessLogEntry:
        mine = [e for e in record["entities"] if e.get("patientId") == me]
        actor = record["actor"]
        return types.AccessLogEntry(
            at=record["recordedAt"],
            action=Action(record["action"]),
            outcome=Outcome(record["outcome"]),
            staff_name=names.get(actor["userId"]) or _staff_label(actor.get("role")),
            staff_role=actor.get("role"),
            emergency=any(e.get("emergencyGrantId") for e in mine),
            resource_types=sorted({e["resourceType"] for e in mine}),
            fields=sorted({f for e in mine for f in e.get("fields", [])}),
        )

    return connection(page, entry)
