"""Reading the audit trail: ADMIN's auditEvents and auditIntegrity, a patient's
myAccessLog (who viewed or changed my record)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, TypeAlias

import strawberry

from audit.chain import Verdict
from audit.records import Action, Outcome
from resolvers import audit as resolve
from schema.pagination import Connection

# strawberry.enum registers the GraphQL enum on the class itself (and returns it), so the
# aliases below are the GraphQL AuditAction and AuditOutcome, and types for mypy too.
strawberry.enum(Action, name="AuditAction")
strawberry.enum(Outcome, name="AuditOutcome")
AuditAction: TypeAlias = Action
AuditOutcome: TypeAlias = Outcome


@strawberry.type(description="One record touched: PHI field names, never values.")
class AuditEntity:
    patient_id: strawberry.ID | None
    resource_type: str
    record_id: strawberry.ID
    fields: list[str]
    emergency_grant_id: strawberry.ID | None


@strawberry.type(description="One action by one caller in one request, with its outcome.")
class AuditEvent:
    seq: int
    recorded_at: datetime
    action: AuditAction
    outcome: AuditOutcome
    actor_id: strawberry.ID | None
    actor_role: str | None
    emergency: bool = strawberry.field(description="Done under a break-glass grant.")
    emergency_grant_ids: list[strawberry.ID]
    operation_name: str | None
    document_id: str | None = strawberry.field(description="The trusted document run, if any.")
    request_id: str
    client_address: str
    entities: list[AuditEntity]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> AuditEvent:
        actor, operation = record["actor"], record["operation"]
        return cls(
            seq=record["seq"],
            recorded_at=record["recordedAt"],
            action=Action(record["action"]),
            outcome=Outcome(record["outcome"]),
            actor_id=actor.get("userId"),
            actor_role=actor.get("role"),
            emergency=bool(actor.get("emergency")),
            emergency_grant_ids=list(actor.get("emergencyGrantIds", [])),
            operation_name=operation.get("name"),
            document_id=operation.get("documentId"),
            request_id=operation["requestId"],
            client_address=operation["clientAddress"],
            entities=[
                AuditEntity(
                    patient_id=e.get("patientId"),
                    resource_type=e["resourceType"],
                    record_id=e["recordId"],
                    fields=list(e.get("fields", [])),
                    emergency_grant_id=e.get("emergencyGrantId"),
                )
                for e in record["entities"]
            ],
        )


@strawberry.type(description="The result of walking the audit chain from its start.")
class AuditIntegrity:
    ok: bool
    checked_records: int = strawberry.field(description="Records verified before any break.")
    first_bad_seq: int | None = strawberry.field(
        description="The first record whose link is broken (edited, missing, inserted or "
        "out of order); null when the chain is intact."
    )
    problem: str | None

    @classmethod
    def from_verdict(cls, verdict: Verdict) -> AuditIntegrity:
        return cls(
            ok=verdict.ok,
            checked_records=verdict.checked,
            first_bad_seq=verdict.first_bad_seq,
            problem=verdict.problem,
        )


class StaffRole(Enum):
    DOCTOR = "DOCTOR"
    PHARMACIST = "PHARMACIST"
    ADMIN = "ADMIN"
    ANALYST = "ANALYST"
    PATIENT = "PATIENT"


@strawberry.type(description="Someone who viewed or changed my record (never other patients).")
class AccessLogEntry:
    at: datetime
    action: AuditAction
    outcome: AuditOutcome
    staff_name: str = strawberry.field(description="The doctor's name, or the staff role.")
    staff_role: str | None
    emergency: bool = strawberry.field(description="Under a break-glass grant.")
    resource_types: list[str]
    fields: list[str]


@strawberry.type
class AuditQueries:
    audit_events: Connection[AuditEvent] | None = strawberry.field(
        resolver=resolve.resolve_audit_events,
        description="The audit trail, newest first, filtered by patient, actor, time "
        "[from, before) and action.",
    )
    audit_integrity: AuditIntegrity | None = strawberry.field(
        resolver=resolve.resolve_audit_integrity,
        description="Walks the whole HMAC chain and names the first broken record.",
    )
    my_access_log: Connection[AccessLogEntry] | None = strawberry.field(
        resolver=resolve.resolve_my_access_log,
        description="Who (staff) viewed or changed my record and when, newest first.",
    )
