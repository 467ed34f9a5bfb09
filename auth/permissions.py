"""Permission classes. Denial raises FORBIDDEN (or UNAUTHENTICATED without a valid
token) for that field only; the rest of the response is still delivered."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.permission import BasePermission

from auth.policy import Anyone
from auth.roles import Role
from errors import Forbidden, Unauthenticated


class HasRole(BasePermission):
    """The caller's role is one of `roles` (or, for PUBLIC fields, anyone may call)."""

    def __init__(
        self, roles: frozenset[Role] | Anyone, where: str, *, allow_before_mfa: bool = False
    ) -> None:
        self.roles, self.where, self.allow_before_mfa = roles, where, allow_before_mfa

    # Synchronous on purpose: an async check turns every guarded field, even a plain
    # attribute, into a coroutine per object (strawberry keeps sync fields sync only
    # when every permission is sync), which was a large share of a list's app CPU.
    def has_permission(self, source: Any, info: strawberry.Info, **kwargs: Any) -> bool:
        if isinstance(self.roles, Anyone):
            return True
        principal = info.context.principal
        if principal is None:
            raise Unauthenticated(info.context.auth_error or "authentication required")
        role = principal.role if self.allow_before_mfa else principal.effective_role
        if role is None:
            raise Forbidden(
                "complete multi-factor authentication first (enrollMfa)", reason="MFA_REQUIRED"
            )
        return role in self.roles

    def on_unauthorized(self) -> None:
        raise Forbidden(f"your role may not use {self.where}", reason="ROLE")
