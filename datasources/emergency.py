"""Break-glass grants: a doctor's time-boxed read access to one patient they do not
treat. A grant is a row scope (datasources/scope.py adds active grants to the doctor's
CARE_RELATIONSHIP patients), so every path obeys it and nothing else changes.

Grants are never deleted: expired and revoked ones stay, for review.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from datasources.documents import Document, utcnow

COLLECTION = "emergency_grants"
INDEXES = [
    IndexModel([("doctorId", ASCENDING), ("expiresAt", ASCENDING)], name="doctor_expiry"),
    IndexModel([("grantedAt", DESCENDING), ("_id", DESCENDING)], name="granted_order"),
]


class EmergencyGrantStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db[COLLECTION]

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(INDEXES)

    async def grant(
        self,
        *,
        doctor_id: ObjectId,
        user_id: ObjectId,
        patient_id: ObjectId,
        reason: str,
        minutes: int,
        session: AsyncClientSession | None = None,
    ) -> Document:
        now = utcnow()
        document: Document = {
            "_id": ObjectId(),
            "doctorId": doctor_id,
            "userId": user_id,
            "patientId": patient_id,
            "reason": reason,
            "grantedAt": now,
            "expiresAt": now + timedelta(minutes=minutes),
            "revokedAt": None,
            "revokedBy": None,
        }
        await self.collection.insert_one(document, session=session)
        return document

    async def active_for(
        self, *, doctor_id: ObjectId, now: datetime | None = None
    ) -> dict[ObjectId, ObjectId]:
        """patient id -> grant id for the doctor's grants in force now."""
        cursor = self.collection.find(
            {"doctorId": doctor_id, "expiresAt": {"$gt": now or utcnow()}, "revokedAt": None},
            projection={"patientId": 1},
        )
        return {grant["patientId"]: grant["_id"] async for grant in cursor}

    async def get(self, *, id: ObjectId, doctor_id: ObjectId) -> Document | None:
        """One grant, if it was given to `doctor_id`."""
        return await self.collection.find_one({"_id": id, "doctorId": doctor_id})

    async def revoke(self, *, id: ObjectId, by: ObjectId) -> Document | None:
        """None when there is no such grant; a grant already ended stays as it was."""
        now = utcnow()
        revoked = await self.collection.find_one_and_update(
            {"_id": id, "revokedAt": None, "expiresAt": {"$gt": now}},
            {"$set": {"revokedAt": now, "revokedBy": by}},
            return_document=ReturnDocument.AFTER,
        )
        return revoked or await self.collection.find_one({"_id": id})

    async def page(
        self, *, active: bool | None, first: int, after: ObjectId | None
    ) -> list[Document]:
        query: dict[str, Any] = {}
        now = utcnow()
        if active is True:
            query = {"revokedAt": None, "expiresAt": {"$gt": now}}
        elif active is False:
            query = {"$or": [{"revokedAt": {"$ne": None}}, {"expiresAt": {"$lte": now}}]}
        if after is not None:
            query = {"$and": [query, {"_id": {"$lt": after}}]} if query else {"_id": {"$lt": after}}
        cursor = self.collection.find(query).sort("_id", DESCENDING).limit(first + 1)
        return await cursor.to_list()
