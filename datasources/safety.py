"""Medication safety over the stores: patient snapshots built in batches, the pure check,
and its results cached in Redis as finished JSON (datasources/redis/safety_cache.py).

The cache key is (patient, clinical-history version, knowledge base version, draft hash).
The version is read first and changes atomically with the data (clinical_history.py),
so a result cached under it can only be older data under an older version: never a stale
alert after a mutation has returned. A hit costs one indexed patient read and one MGET.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from typing import Any

import orjson
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from datasources.clinical_history import UNVERSIONED
from datasources.documents import Document
from datasources.redis.safety_cache import SafetyCache
from datasources.scope import AccessScope
from datasources.typed_loader import TypedLoader
from knowledge.protocol import KnowledgeBase
from safety import check
from safety.model import (
    Alert,
    AllergyRecord,
    AllergySeverity,
    AllergyStatus,
    CodedDrug,
    ConditionRecord,
    Draft,
    MedicationRecord,
    Snapshot,
)
from safety.serialize import alert_from_json, alert_to_json

_PATIENT_FIELDS = {
    "birthDate": 1,
    "sex": 1,
    "pregnant": 1,
    "codedConditions": 1,
    "codedAllergies": 1,
    "conditions": 1,
    "allergies": 1,
    "clinicalVersion": 1,
}
_PRESCRIPTION_FIELDS = {
    "patientId": 1,
    "drug": 1,
    "drugCode": 1,
    "startDate": 1,
    "endDate": 1,
    "status": 1,
    "verification.status": 1,
}


@dataclass(frozen=True)
class CheckRequest:
    patient_id: ObjectId
    draft: Draft


@dataclass
class CheckCounters:
    """Per-process counts, for the benchmark and the admin's curiosity."""

    hits: int = 0
    misses: int = 0


def draft_from_document(document: dict[str, Any]) -> Draft:
    """The draft a stored prescription is, for re-checking it against today's record."""
    dosage = document.get("dosage") or {}
    end = document.get("endDate")
    return Draft(
        drug=drug_from_document(document),
        start=document["startDate"].date(),
        end=end.date() if end else None,
        dose_value=dosage.get("value"),
        dose_unit=dosage.get("unit"),
        frequency=document.get("frequency"),
        prescription_id=str(document["_id"]),
    )


def drug_from_document(document: dict[str, Any]) -> CodedDrug:
    code = document.get("drugCode") or {}
    return CodedDrug(
        text=document.get("drug", code.get("text", "")),
        rxcui=code.get("rxcui"),
        atc=code.get("atc"),
        display=code.get("display"),
    )


def draft_hash(draft: Draft) -> str:
    key = [
        draft.drug.text,
        draft.drug.rxcui,
        draft.start.isoformat(),
        draft.end.isoformat() if draft.end else None,
        draft.dose_value,
        draft.dose_unit,
        draft.frequency,
        draft.prescription_id,
    ]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]


def _age(born: datetime, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def snapshot_from_documents(
    patient: dict[str, Any], prescriptions: Sequence[dict[str, Any]], today: date
) -> Snapshot:
    conditions = patient.get("codedConditions")
    if conditions is None:  # not migrated yet: the text alone, marked uncoded
        conditions = [{"text": t} for t in patient.get("conditions", [])]
    allergies = patient.get("codedAllergies")
    if allergies is None:
        allergies = [{"text": t} for t in patient.get("allergies", [])]
    return Snapshot(
        age=_age(patient["birthDate"], today) if patient.get("birthDate") else None,
        sex=patient.get("sex"),
        pregnant=patient.get("pregnant"),
        conditions=tuple(
            ConditionRecord(text=c["text"], code=c.get("code"), display=c.get("display"))
            for c in conditions
        ),
        allergies=tuple(
            AllergyRecord(
                text=a["text"],
                kind=a.get("kind"),
                code=a.get("code"),
                display=a.get("display"),
                reaction=a.get("reaction"),
                severity=AllergySeverity(a["severity"]) if a.get("severity") else None,
                status=AllergyStatus(a.get("status") or "ACTIVE"),
            )
            for a in allergies
        ),
        medications=tuple(
            MedicationRecord(
                id=str(p["_id"]),
                drug=drug_from_document(p),
                start=p["startDate"].date(),
                end=p["endDate"].date() if p.get("endDate") else None,
                status=p["status"],
                verification=(p.get("verification") or {}).get("status"),
            )
            for p in prescriptions
        ),
    )


class SafetyService:
    """Per request: reads through the caller's access scope, like every store."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        scope: AccessScope,
        cache: SafetyCache,
        kb: KnowledgeBase,
        counters: CheckCounters | None = None,
    ) -> None:
        self.db, self.scope, self.cache, self.kb = db, scope, cache, kb
        self.counters = counters or CheckCounters()

    async def _patients(self, ids: Sequence[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
        scope = await self.scope.mongo_filter("patients")
        query: dict[str, Any] = {"_id": {"$in": list(set(ids))}}
        if scope:
            query = {"$and": [query, scope]}
        cursor = self.db["patients"].find(query, _PATIENT_FIELDS).batch_size(len(ids) + 1)
        return {doc["_id"]: doc for doc in await cursor.to_list()}

    async def _active_prescriptions(
        self, patient_ids: Sequence[ObjectId]
    ) -> dict[ObjectId, list[dict[str, Any]]]:
        # Only ACTIVE ones can count (MedicationRecord.overlaps): the index on
        # (patientId, startDate) serves it and stopped/completed history is not read.
        query: dict[str, Any] = {"patientId": {"$in": list(patient_ids)}, "status": "ACTIVE"}
        scope = await self.scope.mongo_filter("prescriptions")
        if scope:
            query = {"$and": [query, scope]}
        by_patient: dict[ObjectId, list[dict[str, Any]]] = {p: [] for p in patient_ids}
        # One reply for the whole batch (no getMore): a fixed number of round trips
        # whatever the number of patients and prescriptions (the server caps a reply at
        # 16 MB, far above what these projected documents weigh).
        cursor = self.db["prescriptions"].find(query, _PRESCRIPTION_FIELDS).batch_size(100_000)
        async for doc in cursor:
            by_patient[doc["patientId"]].append(doc)
        return by_patient

    def _key(self, patient: dict[str, Any], draft: Draft) -> str:
        version = patient.get("clinicalVersion", UNVERSIONED)
        return f"safety:v1:{patient['_id']}:{version}:{self.kb.version}:{draft_hash(draft)}"

    async def check_many(self, requests: Sequence[CheckRequest]) -> list[list[Alert] | None]:
        """Alerts for each request, in order; None where the patient is not visible to
        the caller. One patient read, one cache read and (for misses only) one
        prescription read and one cache write, whatever the number of requests."""
        if not requests:
            return []
        patients = await self._patients([r.patient_id for r in requests])
        keys = [
            self._key(patients[r.patient_id], r.draft) if r.patient_id in patients else None
            for r in requests
        ]
        cached = await self.cache.get_many([k for k in keys if k])
        results: list[list[Alert] | None] = []
        misses: list[int] = []
        for index, key in enumerate(keys):
            hit = cached.get(key) if key else None
            if hit is not None:
                results.append([alert_from_json(a) for a in orjson.loads(hit)])
            else:
                results.append(None)
                if key:
                    misses.append(index)
        self.counters.hits += len(keys) - len(misses) - keys.count(None)
        self.counters.misses += len(misses)
        if misses:
            prescriptions = await self._active_prescriptions(
                list({requests[i].patient_id for i in misses})
            )
            today = datetime.now(UTC).date()
            fresh: dict[str, bytes] = {}
            for index in misses:
                request = requests[index]
                snapshot = snapshot_from_documents(
                    patients[request.patient_id], prescriptions[request.patient_id], today
                )
                alerts = check(snapshot, request.draft, self.kb)
                results[index] = alerts
                key = keys[index]
                assert key is not None
                fresh[key] = orjson.dumps([alert_to_json(a) for a in alerts])
            await self.cache.set_many(fresh)
        return results

    @cached_property
    def alerts_loader(self) -> TypedLoader[CheckRequest, list[Alert] | None]:
        """Per request (this service is): a page of prescriptions costs one batch."""
        return TypedLoader(self.check_many)

    async def snapshot(self, patient_id: ObjectId) -> Snapshot | None:
        """The patient's snapshot as the caller may see it (uncached), or None."""
        patients = await self._patients([patient_id])
        if patient_id not in patients:
            return None
        prescriptions = await self._active_prescriptions([patient_id])
        today = datetime.now(UTC).date()
        return snapshot_from_documents(patients[patient_id], prescriptions[patient_id], today)

    async def check_one(self, patient_id: ObjectId, draft: Draft) -> list[Alert] | None:
        return (await self.check_many([CheckRequest(patient_id, draft)]))[0]
