"""Data-integrity alarms as records: what failed, when, and why (for ADMIN review)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

COLLECTION = "integrity_alarms"


class IntegrityAlarmStore:
    def __init__(self, db: AsyncDatabase[Any]) -> None:
        self.collection = db[COLLECTION]

    async def add(self, *, check: str, message: str) -> dict[str, Any]:
        alarm = {"check": check, "message": message, "raisedAt": datetime.now(UTC)}
        await self.collection.insert_one(alarm)
        return alarm

    async def latest(self, *, limit: int) -> list[dict[str, Any]]:
        cursor = self.collection.find().sort([("raisedAt", DESCENDING), ("_id", DESCENDING)])
        return await cursor.limit(limit).to_list()
