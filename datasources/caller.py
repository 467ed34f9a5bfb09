"""The check a service repeats for the caller it serves: the same policy table the
field's permission enforces (auth/policy.py), so a service reached by another path than
its field still refuses a caller the field would have refused."""

from __future__ import annotations

from auth.policy import Anyone, field_readers
from auth.roles import Principal
from errors import Forbidden, Unauthenticated


def require_reader(principal: Principal | None, type_name: str, field_name: str) -> Principal:
    """The caller, if `type_name.field_name`'s readers include their role; else refused."""
    readers = field_readers(type_name, field_name)
    if isinstance(readers, Anyone):
        raise ValueError(f"{type_name}.{field_name} is public: no caller to require")
    if principal is None:
        raise Unauthenticated("authentication required")
    if principal.effective_role not in readers:
        raise Forbidden(f"your role may not use {type_name}.{field_name}", reason="ROLE")
    return principal
