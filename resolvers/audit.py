from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import strawberry

from audit.records import Action, Outcome
from datasources.audit_trail import AuditTrail, Record
from datasources.ids import parse_id
from datasources.pagination import Page, PageRequest, decode_cursor, encode_cursor
from resolvers.common import Info, page_request
from schema import audit as types
from schema import validation as check
from schema.pagination import Connection, connection

From = Annotated[datetime | None, strawberry.argument(name="from", description="Inclusive start.")]
Before = Annotated[datetime | None, strawberry.argument(description="Exclusive end.")]


def _trail(info: Info) -> AuditTrail:
    trail = info.context.audit_trail
    assert trail is not None, "the audit log is opened with the app"
    return trail


async def _seq_page(
    list_name: str,
    request: PageRequest,
    read: Callable[[int | None], Awaitable[list[Record]]],
) -> Page[Record]:
    """One page of audit records, newest first; `read(before_seq)` returns `first + 1`."""
    before_seq = None
    if request.after:
        (before_seq,) = decode_cursor(request.after, list_name=list_name, types=(int,))
    rows = await read(before_seq)
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
    patient = None if patient_id is None else str(parse_id(patient_id, field="patientId"))
    actor = None if actor_id is None else str(parse_id(actor_id, field="actorId"))
    trail, request = _trail(info), page_request(info, first, after)

    def read(before_seq: int | None) -> Awaitable[list[Record]]:
        return trail.events(
            patient_id=patient,
            actor_id=actor,
            starts_from=starts_from,
            before=before,
            action=None if action is None else action.value,
            first=request.first,
            before_seq=before_seq,
        )

    page = await _seq_page("auditEvents", request, read)
    return connection(page, types.AuditEvent.from_record)


async def resolve_audit_integrity(info: Info) -> types.AuditIntegrity:
    return types.AuditIntegrity.from_verdict(await _trail(info).verify())


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
    trail = _trail(info)
    me = str(trail.patient().patient_id)  # refused unless the caller is a patient
    request = page_request(info, first, after)

    def read(before_seq: int | None) -> Awaitable[list[Record]]:
        return trail.my_access_log(first=request.first, before_seq=before_seq)

    page = await _seq_page("myAccessLog", request, read)
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
