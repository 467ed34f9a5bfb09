"""Object-level rules for mutations that the row scopes alone cannot express: whose
record a caller acts for, and which input fields their role may change."""

from __future__ import annotations

from collections.abc import Iterable

from bson import ObjectId

from auth.policy import INPUT_FIELDS
from auth.roles import Role
from errors import Forbidden
from resolvers.common import Info


def role_of(info: Info) -> Role | None:
    principal = info.context.principal
    return principal.effective_role if principal else None


def require_allowed_inputs(info: Info, mutation: str, changed: Iterable[str]) -> None:
    role = role_of(info)
    allowed = INPUT_FIELDS[mutation].get(role) if role else frozenset()
    if allowed is None:
        return
    refused = sorted(set(changed) - allowed)
    if refused:
        raise Forbidden(
            f"your role may not change {', '.join(refused)}", fields=refused, reason="INPUT_FIELD"
        )


def require_acting_for_self(
    info: Info, *, patient_id: ObjectId | None = None, doctor_id: ObjectId | None = None
) -> None:
    """A patient acts only for their own record, a doctor only as themself."""
    principal, role = info.context.principal, role_of(info)
    if role is Role.PATIENT and patient_id is not None and patient_id != principal.patient_id:
        raise Forbidden("patients may only act for their own record", reason="NOT_OWN_RECORD")
    if role is Role.DOCTOR and doctor_id is not None and doctor_id != principal.doctor_id:
        raise Forbidden("doctors may only act as themselves", reason="NOT_OWN_RECORD")
