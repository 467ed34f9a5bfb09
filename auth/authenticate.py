"""Authentication happens once per request, before the context is built: the bearer
token is verified and checked against the account's current state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from bson import ObjectId
from bson.errors import InvalidId

from auth.roles import Principal, Role
from auth.tokens import ACCESS, InvalidToken, TokenService


class AccountStates(Protocol):
    """Where an account's current state is read: the users store implements this."""

    async def token_state(self, *, id: ObjectId) -> Mapping[str, Any] | None:
        """role, disabled, tokenVersion, patientId, doctorId and revokedSessions."""
        ...


async def authenticate(
    authorization: str | None, *, tokens: TokenService, users: AccountStates
) -> tuple[Principal | None, str | None]:
    """(principal, None) for a valid token; (None, why) otherwise; (None, None) if none."""
    if not authorization:
        return None, None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, "Authorization must be 'Bearer <access token>'"
    try:
        claims = tokens.decode(token.strip(), expected_type=ACCESS)
        user_id = ObjectId(claims["sub"])
    except InvalidToken as error:
        return None, str(error)
    except (InvalidId, TypeError):
        return None, "invalid token"
    # One indexed read per request: revocation (logout, password or role change,
    # disabling) takes effect at once instead of when the token expires.
    user = await users.token_state(id=user_id)
    if user is None or user["disabled"] or user["tokenVersion"] != claims.get("ver"):
        return None, "token revoked"
    if claims.get("sid") in (user.get("revokedSessions") or {}):
        return None, "token revoked: its session was ended"
    return Principal(
        user_id=user_id,
        role=Role(user["role"]),
        patient_id=user.get("patientId"),
        doctor_id=user.get("doctorId"),
        mfa_verified=bool(claims.get("mfa")),
    ), None
