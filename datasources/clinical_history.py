"""The patient's clinical-history version: a token that changes with every write to the
patient's conditions, allergies or prescriptions. Safety results are cached under it, so
a check after a write can never find a result computed before that write."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources.documents import Document

# Patient fields whose change changes what the safety check says.
CLINICAL_FIELDS = frozenset(
    {"conditions", "allergies", "codedConditions", "codedAllergies", "birthDate", "sex", "pregnant"}
)
UNVERSIONED = "0"


def new_version() -> str:
    return str(ObjectId())


def with_new_version(changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` plus a new history version when they touch clinical fields: the version
    changes in the same atomic update as the data."""
    if CLINICAL_FIELDS & changes.keys():
        return {**changes, "clinicalVersion": new_version()}
    return changes


async def bump(db: AsyncDatabase[Document], patient_id: ObjectId) -> None:
    """After a prescription write commits, before the mutation returns."""
    await db["patients"].update_one(
        {"_id": patient_id}, {"$set": {"clinicalVersion": new_version()}}
    )
