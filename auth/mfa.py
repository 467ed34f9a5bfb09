"""TOTP second factor (RFC 6238, via pyotp) and one-time recovery codes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

import pyotp

ISSUER = "CareGraph"
RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def matching_step(secret: str, code: str) -> int | None:
    """The time step the code belongs to, allowing one step of clock drift either way
    (as authenticator apps expect), or None. Callers accept a step only once: RFC 6238
    section 5.2 forbids accepting a code again after it has been validated."""
    totp, code = pyotp.TOTP(secret), code.strip()
    # A code is ASCII digits. Anything else cannot match, and compare_digest raises
    # TypeError for non-ASCII text instead of answering False.
    if not (code.isascii() and code.isdigit()):
        return None
    now = totp.timecode(datetime.now(UTC))
    for step in (now - 1, now, now + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def new_recovery_codes() -> tuple[list[str], list[str]]:
    """Codes to show once, and the hashes to store."""
    codes = [f"{secrets.token_hex(4)}-{secrets.token_hex(4)}" for _ in range(RECOVERY_CODES)]
    return codes, [hash_recovery_code(code) for code in codes]


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(code.strip().lower().encode()).hexdigest()


def matching_recovery_hash(code: str, stored: list[str]) -> str | None:
    candidate = hash_recovery_code(code)
    return next((h for h in stored if hmac.compare_digest(h, candidate)), None)
