"""Password policy (NIST SP 800-63B) and hashing (bcrypt, off the event loop).

bcrypt reads at most 72 bytes. Every password is first reduced with SHA-256 (and
base64, so no NUL bytes reach bcrypt), so a 200-character passphrase keeps all of its
strength instead of being silently truncated.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from functools import lru_cache

import bcrypt

from errors import BadUserInput

MIN_LENGTH = 12
MAX_LENGTH = 256  # NIST: accept at least 64; the limit only bounds hashing work.
_TRAILING_NOISE = re.compile(r"[\d\W_]+$")


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    # zxcvbn bundles a 30,000-entry list of the most common leaked passwords.
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def _is_common(password: str, context_words: list[str]) -> bool:
    lowered = password.lower()
    common = _common_passwords()
    if lowered in common:
        return True
    # "password2024!" and "qwertyqwerty" are as guessable as their common core.
    core = _TRAILING_NOISE.sub("", lowered)
    if len(core) >= 4 and core in common:
        return True
    if _is_sequence(lowered):
        return True
    for size in range(1, len(lowered) // 2 + 1):
        if len(lowered) % size == 0 and lowered == lowered[:size] * (len(lowered) // size):
            return True
    return any(len(word) >= 4 and word in lowered for word in context_words)


def _is_sequence(text: str) -> bool:
    """A run with one constant step, like 123456789012, 987654321098 or abcdefghijkl."""
    if text.isdigit():
        steps = {(int(b) - int(a)) % 10 for a, b in zip(text, text[1:], strict=False)}
    else:
        steps = {ord(b) - ord(a) for a, b in zip(text, text[1:], strict=False)}
    return len(steps) == 1 and steps <= {1, -1, 9}


def check_policy(
    password: str, *, context_words: list[str] | None = None, field: str = "password"
) -> None:
    """Length-based rules and a common-password check; no composition rules."""
    if len(password) < MIN_LENGTH:
        raise BadUserInput(f"{field} must be at least {MIN_LENGTH} characters", field=field)
    if len(password) > MAX_LENGTH:
        raise BadUserInput(f"{field} must be at most {MAX_LENGTH} characters", field=field)
    words = ["caregraph", *(w.lower() for w in context_words or [])]
    if _is_common(password, words):
        raise BadUserInput(
            f"{field} is too common or too easy to guess; "
            "a few unrelated words make a strong password",
            field=field,
        )


def _prehash(password: str) -> bytes:
    return base64.b64encode(hashlib.sha256(password.encode("utf-8")).digest())


def _hash(password: str, rounds: int) -> str:
    return bcrypt.hashpw(_prehash(password), bcrypt.gensalt(rounds)).decode()


def _verify(password: str, hashed: str) -> bool:
    try:
        return bcrypt.checkpw(_prehash(password), hashed.encode())
    except ValueError:  # not a bcrypt hash (a locked or imported account): no match
        return False


async def hash_password(password: str, *, rounds: int = 12) -> str:
    return await asyncio.to_thread(_hash, password, rounds)


async def verify_password(password: str, hashed: str | None, *, rounds: int = 12) -> bool:
    """Constant work whether or not the account exists: an unknown user is checked
    against a dummy hash, so timing does not reveal which emails have accounts."""
    if len(password) > MAX_LENGTH:
        password = password[: MAX_LENGTH + 1]  # never matches; bounds the work
    # Off the loop even the first time, when the dummy hash is computed (and cached).
    target: str = hashed if hashed else await asyncio.to_thread(_dummy_hash, rounds)
    matches = await asyncio.to_thread(_verify, password, target)
    return matches and hashed is not None


async def warm_up(*, rounds: int) -> None:
    """Compute the dummy hash at start-up, so the first unknown-account login costs one
    bcrypt like every other login (equal timing from the first request on)."""
    await asyncio.to_thread(_dummy_hash, rounds)


@lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> str:
    # Same cost as real hashes, so an unknown account takes as long as a wrong password.
    return _hash("not a real password, only for equal timing", rounds)
