"""What an audit record is, and the one function that builds every record.

A record is one action by one caller in one request with one outcome, listing the
entities (patient, resource type, record id, PHI field names: never values) it touched,
like a FHIR AuditEvent with several `entity` elements. A request that reads 500
appointments writes one record, not 500.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any


class Action(Enum):
    READ = "READ"
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    # Granting, revoking or refusing break-glass access is itself audited.
    EMERGENCY_ACCESS = "EMERGENCY_ACCESS"


class Outcome(Enum):
    SUCCESS = "SUCCESS"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    RATE_LIMITED = "RATE_LIMITED"


@dataclass(frozen=True)
class Actor:
    """Who acted: the account and the role it acted in."""

    user_id: str | None
    role: str | None


@dataclass(frozen=True)
class Channel:
    """How: which operation, in which request, from where."""

    operation: str | None
    document_id: str | None
    request_id: str
    client_address: str


@dataclass
class Entity:
    """One record touched. `patient_id` is None only when a denied lookup named a record
    whose patient the caller may not learn."""

    resource_type: str
    record_id: str
    patient_id: str | None
    fields: set[str] = field(default_factory=set)
    emergency_grant_id: str | None = None

    def as_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "resourceType": self.resource_type,
            "recordId": self.record_id,
            "patientId": self.patient_id,
            "fields": sorted(self.fields),
        }
        if self.emergency_grant_id:
            document["emergencyGrantId"] = self.emergency_grant_id
        return document


def now_ms() -> datetime:
    """MongoDB keeps milliseconds: the signed time must be the time a read returns."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def build_record(
    *,
    actor: Actor,
    channel: Channel,
    action: Action,
    outcome: Outcome,
    entities: Iterable[Entity],
    recorded_at: datetime | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """THE audit record builder: every record in the log is made here (seq and mac are
    added when it is chained, in datasources/audit_log.py)."""
    listed = sorted(
        (entity.as_document() for entity in entities),
        key=lambda e: (e["resourceType"], e["recordId"]),
    )
    grants = sorted({e["emergencyGrantId"] for e in listed if "emergencyGrantId" in e})
    record: dict[str, Any] = {
        "recordedAt": recorded_at or now_ms(),
        "action": action.value,
        "outcome": outcome.value,
        "actor": {
            "userId": actor.user_id,
            "role": actor.role,
            "emergency": bool(grants),
            "emergencyGrantIds": grants,
        },
        "operation": {
            "name": channel.operation,
            "documentId": channel.document_id,
            "requestId": channel.request_id,
            "clientAddress": channel.client_address,
        },
        "entities": listed,
        # Denormalised for the indexes behind auditEvents(patientId) and myAccessLog.
        "patientIds": sorted({e["patientId"] for e in listed if e["patientId"]}),
    }
    if detail:
        record["detail"] = detail
    return record
