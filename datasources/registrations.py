"""Sign-ups waiting for their email address to be confirmed.

A sign-up creates no account and no patient record: it is kept here, with only the
SHA-256 of its one-time code, until `verifyEmail` proves the address is the caller's.
Until then the address has no account, so `login` answers exactly as for a wrong
password. Signing up again with the same address replaces the pending sign-up (and its
code): nobody has proven the address yet, and only its owner receives the new code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from datasources.documents import Document, utcnow
from errors import Conflict

# No 0/O or 1/I/L: easy to copy from an email. 30^10 codes: with the login throttle's
# five guesses a minute, guessing one in a day succeeds about once in 10^11 tries.
_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ2345689"
CODE_LENGTH = 10


def new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))


def _normalised(code: str) -> str:
    return code.strip().upper().replace("-", "").replace(" ", "")


def code_hash(code: str) -> str:
    # The code is random and long, so a fast hash suffices (unlike passwords).
    return hashlib.sha256(_normalised(code).encode()).hexdigest()


class PendingRegistrations:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["pending_registrations"]

    async def replace(
        self,
        *,
        email: str,
        password_hash: str,
        patient: Document,
        code: str,
        ttl: timedelta,
    ) -> Document:
        """Keep this sign-up as the address's only pending one; returns it."""
        now = utcnow()
        update = {
            "$set": {
                "passwordHash": password_hash,
                "patient": patient,
                "codeHash": code_hash(code),
                "expiresAt": now + ttl,
                "updatedAt": now,
            },
            "$setOnInsert": {"createdAt": now},
        }
        for _ in range(3):
            try:
                pending = await self.collection.find_one_and_update(
                    {"email": email}, update, upsert=True, return_document=ReturnDocument.AFTER
                )
            except DuplicateKeyError:
                # Two sign-ups for one address at once: both upserts inserted, one lost
                # on the unique index. The document exists now: the retry updates it.
                continue
            # The embedded server can answer None to an upsert that raced another one
            # on the unique key (mongod returns the document): read what was written.
            pending = pending or await self.collection.find_one({"email": email})
            if pending is not None:
                return pending
        raise Conflict("another sign-up for this address is in progress; try again")

    async def claim(self, *, email: str, code: str, now: datetime) -> Document | None:
        """The pending sign-up for `email` if `code` is its code and has not expired,
        removed so the code works once (a concurrent second claim gets None)."""
        pending = await self.collection.find_one({"email": email})
        if pending is None or pending["expiresAt"] <= now:
            return None
        if not hmac.compare_digest(pending["codeHash"], code_hash(code)):
            return None
        return await self.collection.find_one_and_delete(
            {"_id": pending["_id"], "codeHash": pending["codeHash"]}
        )
