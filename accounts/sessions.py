"""Sign-in and sessions: password and second-factor checks, token issue and rotation,
revocation. Resolvers call this; it owns the order of the security-relevant steps."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from auth import logoff, mfa
from auth.passwords import verify_password
from auth.tokens import REFRESH, InvalidToken, IssuedToken, TokenService
from datasources.documents import Document, utcnow
from datasources.redis.throttle import LoginThrottle
from datasources.users import RefreshTokenStore, UserStore
from errors import Unauthenticated
from settings import Settings

INVALID_LOGIN = "invalid email or password"


@dataclass(frozen=True)
class Session:
    access: IssuedToken
    refresh: IssuedToken
    user: Document


@dataclass(frozen=True)
class SecondFactorNeeded:
    user: Document


class SessionService:
    def __init__(
        self,
        *,
        users: UserStore,
        refresh_tokens: RefreshTokenStore,
        tokens: TokenService,
        throttle: LoginThrottle,
        settings: Settings,
    ) -> None:
        self.users, self.refresh_tokens = users, refresh_tokens
        self.tokens, self.throttle, self.settings = tokens, throttle, settings

    async def start(
        self,
        user: Document,
        *,
        mfa_verified: bool,
        family: str | None = None,
        session_started_at: datetime | None = None,
    ) -> Session:
        user_id = str(user["_id"])
        family = family or secrets.token_urlsafe(16)
        access = self.tokens.issue_access(
            user_id=user_id,
            role=user["role"],
            version=user["tokenVersion"],
            mfa=mfa_verified,
            session=family,
        )
        refresh = self.tokens.issue_refresh(
            user_id=user_id, family=family, mfa=mfa_verified, version=user["tokenVersion"]
        )
        await self.refresh_tokens.record(
            jti=refresh.jti,
            user_id=user["_id"],
            family=family,
            expires_at=refresh.expires_at,
            session_started_at=session_started_at,
        )
        return Session(access, refresh, user)

    async def login(
        self,
        *,
        email: str,
        password: str,
        ip: str,
        totp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> Session | SecondFactorNeeded:
        await self.throttle.attempt(email=email, ip=ip)
        user = await self.users.by_email(email=email)
        # Unknown account, wrong password and disabled account: the same answer, after
        # the same bcrypt work, so neither the message nor the timing tells them apart.
        valid = await verify_password(
            password, user["passwordHash"] if user else None, rounds=self.settings.bcrypt_rounds
        )
        if not valid or user is None or user["disabled"]:
            raise Unauthenticated(INVALID_LOGIN)
        second_factor = (user.get("mfa") or {}).get("confirmed", False)
        if second_factor:
            if not totp_code and not recovery_code:
                return SecondFactorNeeded(user)
            if not await self._second_factor_ok(user, totp_code, recovery_code):
                raise Unauthenticated("invalid verification code")
        await self.throttle.succeeded(email=email, ip=ip)
        return await self.start(user, mfa_verified=second_factor)

    async def _second_factor_ok(
        self, user: Document, totp_code: str | None, recovery_code: str | None
    ) -> bool:
        state = user["mfa"]
        if totp_code:
            step = mfa.matching_step(state["secret"], totp_code)
            if step is None:
                return False
            # Only a later step than any accepted before: no code works twice.
            return await self.users.accept_totp_step(id=user["_id"], step=step)
        matched = mfa.matching_recovery_hash(recovery_code or "", state.get("recoveryCodes", []))
        if matched is None:
            return False
        # Each recovery code works once.
        return await self.users.use_recovery_code(id=user["_id"], code_hash=matched)

    async def refresh(self, *, token: str) -> Session:
        try:
            claims = self.tokens.decode(token, expected_type=REFRESH)
            user_id = ObjectId(claims["sub"])
        except (InvalidToken, InvalidId) as error:
            raise Unauthenticated(
                str(error) if isinstance(error, InvalidToken) else "invalid token"
            ) from None
        outcome, used = await self.refresh_tokens.use(
            jti=claims["jti"], **logoff.refresh_conditions(self.settings, utcnow())
        )
        if outcome == "replayed":
            # The session is compromised: its access tokens stop working now too, not
            # when they expire. Only they can carry this session id, and none is
            # issued for it again, so remembering it for their lifetime is enough.
            await self.users.end_session(
                id=user_id,
                session=claims["fam"],
                until=utcnow() + timedelta(seconds=self.settings.access_token_ttl_s),
            )
            raise Unauthenticated("refresh token already used: the session has been ended")
        if outcome in logoff.MESSAGES:
            raise Unauthenticated(logoff.MESSAGES[outcome])
        if outcome != "ok" or used is None:
            raise Unauthenticated("refresh token revoked")
        user = await self.users.by_id(id=user_id)
        if user is None or user["disabled"] or user["tokenVersion"] != claims.get("ver"):
            await self.refresh_tokens.revoke_family(family=claims["fam"])
            raise Unauthenticated("refresh token revoked")
        return await self.start(
            user,
            mfa_verified=bool(claims.get("mfa")),
            family=claims["fam"],
            session_started_at=used.get("sessionStartedAt"),
        )

    async def end_all(self, *, user_id: ObjectId, **changes: Any) -> Document:
        """Apply `changes` to the account and revoke every token it holds."""
        user = await self.users.change(id=user_id, changes=changes, revoke=True)
        await self.refresh_tokens.revoke_user(user_id=user_id)
        return user
