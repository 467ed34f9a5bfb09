"""Break-glass access: a doctor's time-boxed access to a patient they do not treat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import strawberry

from resolvers import emergency as resolve
from schema.pagination import Connection


@strawberry.type(description="A break-glass grant: one doctor, one patient, for a time.")
class EmergencyAccessGrant:
    id: strawberry.ID
    patient_id: strawberry.ID
    doctor_id: strawberry.ID
    reason: str
    granted_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    revoked_by: strawberry.ID | None

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(description=...) as Any
        description="In force now: neither expired nor revoked."
    )
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > datetime.now(UTC)

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> EmergencyAccessGrant:
        revoked_by = document.get("revokedBy")
        return cls(
            id=strawberry.ID(str(document["_id"])),
            patient_id=strawberry.ID(str(document["patientId"])),
            doctor_id=strawberry.ID(str(document["doctorId"])),
            reason=document["reason"],
            granted_at=document["grantedAt"],
            expires_at=document["expiresAt"],
            revoked_at=document.get("revokedAt"),
            revoked_by=strawberry.ID(str(revoked_by)) if revoked_by else None,
        )


@strawberry.type
class EmergencyQueries:
    emergency_access_grants: Connection[EmergencyAccessGrant] | None = strawberry.field(
        resolver=resolve.resolve_emergency_access_grants,
        description="Break-glass grants, newest first; `active` filters in force / ended.",
    )


@strawberry.type
class EmergencyMutations:
    request_emergency_access: EmergencyAccessGrant | None = strawberry.field(
        resolver=resolve.resolve_request_emergency_access,
        description="A doctor without a care relationship gets read access to this one "
        "patient (as a treating doctor, prescribing included) for a configured time "
        "(default 60 minutes). Every access under it is audited as emergency access.",
    )
    revoke_emergency_access: EmergencyAccessGrant | None = strawberry.field(
        resolver=resolve.resolve_revoke_emergency_access,
        description="Ends a grant now (a grant already ended is returned unchanged).",
    )
