"""Prescriptions. Costs are stored as integer cents so sums and averages are exact in
every MongoDB aggregation (no binary floating point, no Decimal128 support needed)."""

from __future__ import annotations

from datetime import datetime

from bson import ObjectId

from datasources.documents import Document, DocumentStore

ACTIVE, STOPPED, COMPLETED = "ACTIVE", "STOPPED", "COMPLETED"


class PrescriptionStore(DocumentStore):
    collection_name = "prescriptions"
    entity = "Prescription"
    default_sort = (("startDate", -1), ("_id", -1))
    sort_types = (datetime, ObjectId)
    windowed = True

    @staticmethod
    def search_filter(**criteria) -> Document:
        return prescription_filter(**criteria)

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
