"""Messages waiting for the mail gateway: one document each in `outbox`, drained by the
gateway (which sets `sentAt`). The API never sends mail itself, so a slow or broken mail
server cannot slow down or fail a sign-up, and what went out is on record."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources.documents import Document, utcnow

# Templates the gateway knows how to render.
VERIFY_EMAIL = "verify-email"  # data: code, expiresAt
ACCOUNT_EXISTS = "account-exists"  # someone tried to sign up with this address


class Outbox:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["outbox"]

    async def enqueue(self, *, to: str, template: str, data: dict[str, Any]) -> ObjectId:
        # The id is chosen here (as the driver would), so its type is known.
        message_id = ObjectId()
        await self.collection.insert_one(
            {
                "_id": message_id,
                "to": to,
                "template": template,
                "data": data,
                "createdAt": utcnow(),
                "sentAt": None,
            }
        )
        return message_id
