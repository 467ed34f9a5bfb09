"""JWTs: short-lived access tokens and rotating refresh tokens (PyJWT, HS256 pinned)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from settings import Settings

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ"]
ACCESS, REFRESH = "access", "refresh"


class InvalidToken(Exception):
    """Any reason a token is not accepted; the message is safe to show."""


def load_signing_key(settings: Settings) -> str:
    """The configured key, or (embedded default) one generated on first start and kept
    in the data folder, readable only by this user. Never a constant in the code."""
    if settings.jwt_secret:
        return settings.jwt_secret
    path = Path(settings.data_dir) / "jwt-signing-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    jti: str
    expires_at: datetime


class TokenService:
    def __init__(self, settings: Settings, key: str) -> None:
        self.settings = settings
        self.key = key

    def _issue(self, claims: dict[str, Any], lifetime: timedelta) -> IssuedToken:
        now = datetime.now(UTC)
        jti = secrets.token_urlsafe(16)
        expires = now + lifetime
        payload = {
            **claims,
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": now,
            "nbf": now,
            "exp": expires,
            "jti": jti,
        }
        return IssuedToken(jwt.encode(payload, self.key, algorithm=ALGORITHM), jti, expires)

    def issue_access(
        self, *, user_id: str, role: str, version: int, mfa: bool, session: str
    ) -> IssuedToken:
        # `sid` names the refresh-token family (the session) the token belongs to, so
        # ending that one session ends its access tokens too, not only its refreshes.
        return self._issue(
            {
                "sub": user_id,
                "typ": ACCESS,
                "role": role,
                "ver": version,
                "mfa": mfa,
                "sid": session,
            },
            timedelta(seconds=self.settings.access_token_ttl_s),
        )

    def issue_refresh(self, *, user_id: str, family: str, mfa: bool, version: int) -> IssuedToken:
        return self._issue(
            {"sub": user_id, "typ": REFRESH, "fam": family, "mfa": mfa, "ver": version},
            timedelta(seconds=self.settings.refresh_token_ttl_s),
        )

    def decode(self, token: str, *, expected_type: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],  # pinned: no "none", no key confusion
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token not yet valid") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("invalid token") from None
        if claims.get("typ") != expected_type:
            raise InvalidToken(f"not {_article(expected_type)} {expected_type} token")
        return claims


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
