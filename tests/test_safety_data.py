"""Coded clinical data in MongoDB: the versioned data migration of existing documents, and
the demo histories (some patients raise each alert kind, most raise none)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from datasources.data_migrations import COLLECTION, MIGRATIONS, apply_data_migrations
from datasources.safety import CheckRequest, draft_from_document
from safety import AlertKind

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def _legacy_patient(**fields):
    return {
        "_id": ObjectId(),
        "givenName": "Lee",
        "familyName": "Legacy",
        "birthDate": datetime(1960, 5, 1, tzinfo=UTC),
        "sex": "FEMALE",
        "conditions": ["Hypertension", "Dragon pox"],
        "allergies": ["Penicillin", "Moonbeams"],
        "createdAt": NOW,
        "updatedAt": NOW,
        **fields,
    }


def _legacy_prescription(patient_id, drug, status="ACTIVE"):
    return {
        "_id": ObjectId(),
        "patientId": patient_id,
        "doctorId": ObjectId(),
        "drug": drug,
        "dosage": {"value": 500.0, "unit": "MG"},
        "frequency": "THREE_TIMES_DAILY",
        "startDate": NOW,
        "endDate": NOW + timedelta(days=7),
        "costCents": 700,
        "status": status,
        "createdAt": NOW,
        "updatedAt": NOW,
    }


async def test_the_migration_codes_legacy_documents_once_and_resumes(services):
    db = services.db
    # The app ran the migrations at start, on an empty database: start from legacy data.
    await db[COLLECTION].delete_many({})
    patients = [_legacy_patient() for _ in range(5)]
    await db["patients"].insert_many(patients)
    rx = [_legacy_prescription(p["_id"], "Amoxicillin") for p in patients]
    rx.append(_legacy_prescription(patients[0]["_id"], "Mystery syrup", status="COMPLETED"))
    await db["prescriptions"].insert_many(rx)

    # Interrupted half-way: two patients already coded by a run that stopped.
    from datasources.data_migrations import _code_clinical_data

    class Interrupted(Exception):
        pass

    calls = 0
    collection_type = type(db["patients"])
    original = collection_type.bulk_write

    async def failing_bulk_write(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls > 1:
            raise Interrupted
        return await original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(collection_type, "bulk_write", failing_bulk_write)
        with pytest.raises(Interrupted):
            await _code_clinical_data(db, services.knowledge, 2)
    assert await db["patients"].count_documents({"codedConditions": {"$exists": True}}) == 2

    ran = await apply_data_migrations(db, services.knowledge, batch=2)
    assert ran == [m.version for m in MIGRATIONS]
    coded = await db["patients"].find_one({"_id": patients[3]["_id"]})
    assert [c["code"] for c in coded["codedConditions"]] == ["I10", None]
    assert coded["codedConditions"][1]["text"] == "Dragon pox"  # kept verbatim, uncoded
    assert [(a["kind"], a["code"]) for a in coded["codedAllergies"]] == [
        ("CLASS", "penicillin-allergy"),
        (None, None),
    ]
    amoxicillin = await db["prescriptions"].find_one({"_id": rx[3]["_id"]})
    assert amoxicillin["drugCode"]["rxcui"] == "723"
    assert amoxicillin["verification"] == {"status": "PENDING_REVIEW"}
    # Penicillin allergy + amoxicillin: the queue ranks it critical.
    assert amoxicillin["safety"]["maxSeverity"] == "CRITICAL"
    old = await db["prescriptions"].find_one({"_id": rx[-1]["_id"]})
    assert old["drugCode"]["rxcui"] is None and old["verification"] is None

    # Idempotent: a second start runs nothing and changes nothing.
    before = await db["patients"].find().sort("_id").to_list()
    assert await apply_data_migrations(db, services.knowledge, batch=2) == []
    assert await db["patients"].find().sort("_id").to_list() == before
    recorded = await db[COLLECTION].find().sort("_id").to_list()
    assert [r["_id"] for r in recorded] == [1, 2, 3]


async def test_demo_histories_raise_each_alert_kind_and_most_patients_none(services, demo):
    db = services.db
    safety = services.safety()
    prescriptions = await db["prescriptions"].find({"status": "ACTIVE"}).to_list()
    requests = [CheckRequest(p["patientId"], draft_from_document(p)) for p in prescriptions]
    results = await safety.check_many(requests)
    kinds: Counter[AlertKind] = Counter()
    alerting_patients = set()
    for request, alerts in zip(requests, results, strict=True):
        assert alerts is not None
        for alert in alerts:
            kinds[alert.kind] += 1
            alerting_patients.add(request.patient_id)
    assert set(kinds) == set(AlertKind), kinds
    total = await db["patients"].count_documents({})
    assert len(alerting_patients) < total / 2, (len(alerting_patients), total)
    # Every demo record is coded or explicitly uncoded, never missing its coding.
    assert await db["patients"].count_documents({"codedConditions": {"$exists": False}}) == 0
    assert await db["prescriptions"].count_documents({"drugCode": {"$exists": False}}) == 0
    # Scenario prescriptions carry the prescriber's acknowledgement of critical alerts.
    acknowledged = await db["prescriptions"].count_documents({"overrides.0": {"$exists": True}})
    assert acknowledged >= 3
