"""Data-integrity alarms as records: what failed, when, and why (for ADMIN review)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from auth.roles import Principal
from datasources.caller import require_reader

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


class AlarmReview:
    """The alarms one caller may read (administrators: Query.integrityAlarms); raising
    alarms is for the checks (backup/alarms.py), never for a request."""

    def __init__(self, store: IntegrityAlarmStore, principal: Principal | None) -> None:
        self._store, self._principal = store, principal

    async def latest(self, *, limit: int) -> list[dict[str, Any]]:
        require_reader(self._principal, "Query", "integrityAlarms")
        return await self._store.latest(limit=limit)
