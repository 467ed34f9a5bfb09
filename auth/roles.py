"""The roles and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bson import ObjectId


class Role(Enum):
    PATIENT = "PATIENT"
    DOCTOR = "DOCTOR"
    PHARMACIST = "PHARMACIST"
    ANALYST = "ANALYST"
    ADMIN = "ADMIN"


ALL_ROLES = frozenset(Role)


@dataclass(frozen=True)
class Principal:
    """Who is calling, established once per request from a verified access token."""

    user_id: ObjectId
    role: Role
    # The patient or doctor record this account is, for object-level rules.
    patient_id: ObjectId | None = None
    doctor_id: ObjectId | None = None
    # ADMIN accounts act as ADMIN only after a second factor; until then they may only
    # enrol one (see auth/permissions.py).
    mfa_verified: bool = False

    @property
    def effective_role(self) -> Role | None:
        if self.role is Role.ADMIN and not self.mfa_verified:
            return None
        return self.role
