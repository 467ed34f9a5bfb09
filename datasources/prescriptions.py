"""Prescriptions. Costs are stored as integer cents so sums and averages are exact in
every MongoDB aggregation (no binary floating point, no Decimal128 support needed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from datasources import clinical_history
from datasources.documents import Document, DocumentStore

ACTIVE, STOPPED, COMPLETED = "ACTIVE", "STOPPED", "COMPLETED"


class PrescriptionStore(DocumentStore):
    collection_name = "prescriptions"
    entity = "Prescription"
    default_sort = (("startDate", -1), ("_id", -1))
    sort_types = (datetime, ObjectId)
    windowed = True

    @staticmethod
    def search_filter(**criteria: Any) -> Document:
        return prescription_filter(**criteria)

    # Every write moves the patient's clinical-history version (safety results cache).
    async def insert(
        self, *, fields: Document, session: AsyncClientSession | None = None
    ) -> Document:
        document = await super().insert(fields=fields, session=session)
        await clinical_history.bump(self.db, document["patientId"])
        return document

    async def update(
        self,
        *,
        id: ObjectId,
        changes: Document,
        expect: Document | None = None,
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        document = await super().update(id=id, changes=changes, expect=expect, session=session)
        if document is not None:
            await clinical_history.bump(self.db, document["patientId"])
        return document

    async def delete(self, *, id: ObjectId, session: AsyncClientSession | None = None) -> Document:
        document = await super().delete(id=id, session=session)
        await clinical_history.bump(self.db, document["patientId"])
        return document

    async def exists_for(self, *, field: str, id: ObjectId) -> bool:
        # Unscoped on purpose: "may this record be deleted?" must see every dependant.
        return await self.collection.find_one({field: id}, projection={"_id": 1}) is not None


def prescription_filter(
    *,
    patient_id: ObjectId | None = None,
    doctor_id: ObjectId | None = None,
    status: str | None = None,
) -> Document:
    filter: Document = {}
    if patient_id is not None:
        filter["patientId"] = patient_id
    if doctor_id is not None:
        filter["doctorId"] = doctor_id
    if status is not None:
        filter["status"] = status
    return filter
