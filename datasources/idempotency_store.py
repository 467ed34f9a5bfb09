"""The claims and stored answers behind `Idempotency-Key` (runtime/idempotency.py runs
the protocol): one document per (caller, key), its `_id` unique so two concurrent
requests cannot both claim it, removed by MongoDB 24 hours after its creation."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

COLLECTION = "idempotency_keys"
KEEP_FOR = timedelta(hours=24)
INDEXES = [IndexModel([("expiresAt", ASCENDING)], name="expiry", expireAfterSeconds=0)]


class ClaimUnsettled(Exception):
    """A claim could not be released or completed (MongoDB unavailable): it stays pending."""


class IdempotencyStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.keys = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.keys.create_indexes(INDEXES)

    async def claim(self, *, claim_id: str, request_hash: str, now: datetime) -> bool:
        """Claim `claim_id` for the request hashed `request_hash`, pending; False when
        it is claimed already (by this request's first attempt, or another request)."""
        try:
            await self.keys.insert_one(
                {
                    "_id": claim_id,
                    "request": request_hash,
                    "state": "pending",
                    "createdAt": now,
                    "expiresAt": now + KEEP_FOR,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def find(self, claim_id: str) -> dict[str, Any] | None:
        """The claim (request, state, createdAt; status, headers, body once done)."""
        return await self.keys.find_one({"_id": claim_id})

    async def release(self, claim_id: str) -> None:
        """Free a pending claim, so a retry runs for real. Raises ClaimUnsettled."""
        try:
            await self.keys.delete_one({"_id": claim_id, "state": "pending"})
        except PyMongoError as error:
            raise ClaimUnsettled(str(error)) from error

    async def complete(
        self, claim_id: str, *, status: int, headers: list[list[str]], body: bytes
    ) -> None:
        """Store the answer a retry gets back. Raises ClaimUnsettled."""
        try:
            await self.keys.update_one(
                {"_id": claim_id},
                {"$set": {"state": "done", "status": status, "headers": headers, "body": body}},
            )
        except PyMongoError as error:
            raise ClaimUnsettled(str(error)) from error
