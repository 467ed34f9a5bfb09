"""Versioned data migrations for MongoDB documents, as Alembic versions the SQL schema.

Each migration selects only the documents it has not changed yet and writes them in
batches, so it is idempotent and resumable: a start interrupted half-way carries on where
it stopped. A migration is recorded in `data_migrations` once it has run to the end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from datasources.clinical_history import new_version
from datasources.documents import Document
from datasources.safety import draft_from_document, snapshot_from_documents
from knowledge.coding import code_allergy, code_condition, code_drug
from knowledge.protocol import KnowledgeBase
from safety import check, max_severity

log = logging.getLogger(__name__)
BATCH = 500
COLLECTION = "data_migrations"
Apply = Callable[[AsyncDatabase[Document], KnowledgeBase, int], Awaitable[int]]


@dataclass(frozen=True)
class DataMigration:
    version: int
    name: str
    apply: Apply


async def _in_batches(
    db: AsyncDatabase[Document],
    collection: str,
    selector: Document,
    change: Callable[[list[Document]], Awaitable[list[UpdateOne]]],
    batch: int,
) -> int:
    """Apply `change` to every document matching `selector`, `batch` at a time. Each
    write must make the document stop matching, or the loop could not end: the number of
    rounds is bounded by the count found at the start."""
    remaining = await db[collection].count_documents(selector)
    rounds, changed = remaining // batch + 2, 0
    for _ in range(rounds):
        documents = await db[collection].find(selector).limit(batch).to_list()
        if not documents:
            break
        updates = await change(documents)
        if updates:
            await db[collection].bulk_write(updates, ordered=False)
        changed += len(documents)
    return changed


async def _code_clinical_data(db: AsyncDatabase[Document], kb: KnowledgeBase, batch: int) -> int:
    async def patients(documents: list[Document]) -> list[UpdateOne]:
        return [
            UpdateOne(
                {"_id": p["_id"]},
                {
                    "$set": {
                        "codedConditions": [code_condition(t, kb) for t in p.get("conditions", [])],
                        "codedAllergies": [code_allergy(t, kb) for t in p.get("allergies", [])],
                        # What the check sees changed: results cached before are void.
                        "clinicalVersion": new_version(),
                    }
                },
            )
            for p in documents
        ]

    async def prescriptions(documents: list[Document]) -> list[UpdateOne]:
        return [
            UpdateOne({"_id": p["_id"]}, {"$set": {"drugCode": code_drug(p["drug"], kb)}})
            for p in documents
        ]

    changed = await _in_batches(
        db, "patients", {"codedConditions": {"$exists": False}}, patients, batch
    )
    changed += await _in_batches(
        db, "prescriptions", {"drugCode": {"$exists": False}}, prescriptions, batch
    )
    return changed


async def _verification(db: AsyncDatabase[Document], kb: KnowledgeBase, batch: int) -> int:
    """Active prescriptions wait for a pharmacist; older ones predate review (null)."""

    async def change(documents: list[Document]) -> list[UpdateOne]:
        return [
            UpdateOne(
                {"_id": p["_id"]},
                {
                    "$set": {
                        "verification": {"status": "PENDING_REVIEW"}
                        if p["status"] == "ACTIVE"
                        else None
                    }
                },
            )
            for p in documents
        ]

    return await _in_batches(
        db, "prescriptions", {"verification": {"$exists": False}}, change, batch
    )


async def _rank_pending(db: AsyncDatabase[Document], kb: KnowledgeBase, batch: int) -> int:
    """The pharmacy queue sorts by each pending prescription's worst alert: compute it."""
    today = datetime.now(UTC).date()

    async def change(documents: list[Document]) -> list[UpdateOne]:
        patient_ids = list({d["patientId"] for d in documents})
        patients = {p["_id"]: p async for p in db["patients"].find({"_id": {"$in": patient_ids}})}
        active: dict[Any, list[Document]] = {p: [] for p in patient_ids}
        async for p in db["prescriptions"].find(
            {"patientId": {"$in": patient_ids}, "status": "ACTIVE"}
        ):
            active[p["patientId"]].append(p)
        updates = []
        for document in documents:
            patient = patients.get(document["patientId"])
            alerts = (
                check(
                    snapshot_from_documents(patient, active[document["patientId"]], today),
                    draft_from_document(document),
                    kb,
                )
                if patient
                else []
            )
            highest = max_severity(alerts)
            updates.append(
                UpdateOne(
                    {"_id": document["_id"]},
                    {
                        "$set": {
                            "safety": {
                                "rank": highest.rank if highest else 0,
                                "maxSeverity": highest.value if highest else None,
                                "alertCount": len(alerts),
                                "knowledgeBaseVersion": kb.version,
                            }
                        }
                    },
                )
            )
        return updates

    return await _in_batches(
        db,
        "prescriptions",
        {"verification.status": "PENDING_REVIEW", "safety": {"$exists": False}},
        change,
        batch,
    )


async def rank_pending_prescriptions(db: AsyncDatabase[Document], kb: KnowledgeBase) -> int:
    """For data written around the API (demo data): rank what waits unranked."""
    return await _rank_pending(db, kb, BATCH)


MIGRATIONS = (
    DataMigration(1, "code conditions, allergies and prescription drugs", _code_clinical_data),
    DataMigration(2, "pharmacist verification for active prescriptions", _verification),
    DataMigration(3, "alert severity of prescriptions awaiting review", _rank_pending),
)


async def apply_data_migrations(
    db: AsyncDatabase[Document], kb: KnowledgeBase, *, batch: int = BATCH
) -> list[int]:
    """Run every migration not yet recorded, in version order; the versions it ran."""
    applied = {d["_id"] async for d in db[COLLECTION].find({}, {"_id": 1})}
    ran = []
    for migration in MIGRATIONS:
        if migration.version in applied:
            continue
        changed = await migration.apply(db, kb, batch)
        await db[COLLECTION].update_one(
            {"_id": migration.version},
            {
                "$setOnInsert": {
                    "name": migration.name,
                    "appliedAt": datetime.now(UTC),
                    "documents": changed,
                    "knowledgeBaseVersion": kb.version,
                }
            },
            upsert=True,
        )
        log.info("data migration %s (%s): %s documents", migration.version, migration.name, changed)
        ran.append(migration.version)
    return ran
