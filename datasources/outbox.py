"""Messages waiting for the mail gateway: one document each in `outbox`, drained by the
gateway (which sets `sentAt`). The API never sends mail itself, so a slow or broken mail
server cannot slow down or fail a sign-up, and what went out is on record."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources.documents import utcnow

# Templates the gateway knows how to render.
VERIFY_EMAIL = "verify-email"  # data: code, expiresAt
ACCOUNT_EXISTS = "account-exists"  # someone tried to sign up with this address


class Outbox:
    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db["outbox"]

    async def enqueue(self, *, to: str, template: str, data: dict[str, Any]) -> ObjectId:
        result = await self.collection.insert_one(
            {"to": to, "template": template, "data": data, "createdAt": utcnow(), "sentAt": None}
        )
        return result.inserted_id
