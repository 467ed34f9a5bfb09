from __future__ import annotations

import re

import strawberry
from bson import ObjectId

from audit.records import Action
from datasources.documents import Document
from datasources.emergency_access import EmergencyAccess
from datasources.ids import parse_id
from datasources.pagination import Page, decode_cursor, encode_cursor
from datasources.phi_access import Transaction
from errors import BadUserInput, Conflict, NotFound
from resolvers.common import Info, page_request
from schema import emergency as types
from schema.pagination import Connection, connection

MIN_REASON_CHARACTERS, MIN_REASON_WORDS, MAX_REASON_CHARACTERS = 20, 4, 1000


def _emergency(info: Info) -> EmergencyAccess:
    access = info.context.emergency
    assert access is not None, "the PHI safeguards are opened with the app"
    return access


def _reason(value: str) -> str:
    """At least a sentence: the reviewer must be able to tell why the glass was broken."""
    reason = " ".join(value.split())
    words = re.findall(r"\w+", reason)
    if len(reason) < MIN_REASON_CHARACTERS or len(words) < MIN_REASON_WORDS:
        raise BadUserInput(
            f"reason must be at least a sentence ({MIN_REASON_WORDS} words, "
            f"{MIN_REASON_CHARACTERS} characters)",
            field="reason",
        )
    if len(reason) > MAX_REASON_CHARACTERS:
        raise BadUserInput(
            f"reason must be at most {MAX_REASON_CHARACTERS} characters", field="reason"
        )
    return reason


async def resolve_request_emergency_access(
    info: Info, patient_id: strawberry.ID, reason: str
) -> types.EmergencyAccessGrant:
    access = _emergency(info)
    access.requester()  # refused first unless the caller is a doctor with a record
    patient = parse_id(patient_id, field="patientId")
    explanation = _reason(reason)
    if not await info.context.directory.patient_exists(id=patient):
        raise NotFound("Patient", str(patient_id))
    scope = info.context.sources.patients.scope
    active = await scope.emergency_grants()
    if patient in active:
        current = await access.own(id=active[patient])
        if current is not None:  # None only if it was never this doctor's
            return types.EmergencyAccessGrant.from_document(current)
    if patient in await scope.related_patients():
        raise Conflict("you already treat this patient: no emergency access is needed")
    writer = scope.audit
    minutes = info.context.settings.emergency_access_minutes

    async def work(session: Transaction | None) -> Document:
        return await access.grant(
            patient_id=patient, reason=explanation, minutes=minutes, session=session
        )

    if writer is None:
        grant = await work(None)
    else:

        async def audited(session: Transaction) -> Document:
            # The grant and its audit record commit together, or neither does.
            grant = await work(session)
            await writer.record_event(
                action=Action.EMERGENCY_ACCESS,
                resource_type="Patient",
                record_id=str(patient),
                patient_id=str(patient),
                grant_id=str(grant["_id"]),
                session=session,
            )
            return grant

        grant = await writer.committed_with(audited)
    return types.EmergencyAccessGrant.from_document(grant)


async def resolve_revoke_emergency_access(
    info: Info, id: strawberry.ID
) -> types.EmergencyAccessGrant:
    grant = await _emergency(info).revoke(id=parse_id(id))
    if grant is None:
        raise NotFound("EmergencyAccessGrant", str(id))
    return types.EmergencyAccessGrant.from_document(grant)


async def resolve_emergency_access_grants(
    info: Info, active: bool | None = None, first: int | None = None, after: str | None = None
) -> Connection[types.EmergencyAccessGrant]:
    request = page_request(info, first, after)
    after_id = None
    if request.after:
        (after_id,) = decode_cursor(
            request.after, list_name="emergencyAccessGrants", types=(ObjectId,)
        )
    rows = await _emergency(info).page(active=active, first=request.first, after=after_id)
    items = rows[: request.first]
    page = Page(
        items=items,
        cursors=[encode_cursor([row["_id"]], list_name="emergencyAccessGrants") for row in items],
        has_next_page=len(rows) > request.first,
    )
    return connection(page, types.EmergencyAccessGrant.from_document)
