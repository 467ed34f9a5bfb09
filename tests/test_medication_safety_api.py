"""Medication safety through GraphQL, against real MongoDB and real Redis: checks for the
treating doctor and the pharmacist, prescribing with acknowledged overrides, no stale
alert after a write, the verification lifecycle and the pharmacy queue."""

from __future__ import annotations

import pytest
from bson import ObjectId

from auth.roles import Role
from tests.conftest import http_client
from tests.factories import create_doctor, create_patient
from tests.support import issue_token

CHECK = """query($p: ID!, $d: DraftPrescriptionInput!) {
  medicationSafetyCheck(patientId: $p, draft: $d) {
    highestSeverity knowledgeBaseVersion
    drug { rxcui atc display coded }
    alerts { id kind severity summary detail ruleId source { label url }
             evidence { kind display id code } suggestions { label rxcui display } } } }"""

PRESCRIBE = """mutation($input: CreatePrescriptionInput!, $acks: [AlertAcknowledgementInput!]) {
  prescribe(input: $input, acknowledgements: $acks) {
    __typename
    ... on Prescription { id drugCoding { rxcui coded } verification { status }
                          overrides { alertId reason comment severity } }
    ... on PrescriptionRefused { message unacknowledged { id kind severity } alerts { id } } } }"""

ALERTS = """query($id: ID!) { prescription(id: $id) {
  alerts { kind severity ruleId } overrides { reason comment } } }"""

TRANSITIONS = {
    "verify": "mutation($id: ID!) { verifyPrescription(id: $id) { ...R } }",
    "dispense": "mutation($id: ID!) { dispensePrescription(id: $id) { ...R } }",
    "reject": 'mutation($id: ID!) { rejectPrescription(id: $id, reason: "Use pravastatin") '
    "{ ...R } }",
}
RESULT = """fragment R on VerificationResult { __typename
  ... on Prescription { verification { status reviewedBy reviewedAt rejectionReason
                                       dispensedBy dispensedAt } }
  ... on InvalidVerificationTransition { currentStatus requestedStatus message } }"""


@pytest.fixture
def settings(settings, redis_url):
    return settings.with_overrides(redis_url=redis_url)


@pytest.fixture
async def ward(client, services):
    """A patient allergic to penicillin, with CKD stage 4, on simvastatin; their doctor,
    a pharmacist and the patient themself."""
    patient = await create_patient(
        client,
        conditions=["CKD stage 4", "Hypertension"],
        allergyRecords=[
            {"substance": "Penicillin", "reaction": "hives", "severity": "ANAPHYLAXIS"},
            {"substance": "Ibuprofen", "status": "RESOLVED"},
        ],
    )
    doctor = await create_doctor(client)
    doctor_token = await issue_token(services, Role.DOCTOR, doctor_id=ObjectId(doctor["id"]))
    # Entered by an admin for the doctor: it makes the doctor the patient's prescriber.
    simvastatin = await prescribe(client, patient, doctor, "Zocor", 20)
    return {
        "patient": patient,
        "doctor": doctor,
        "simvastatin": simvastatin["id"],
        "tokens": {
            Role.DOCTOR: doctor_token,
            Role.PHARMACIST: await issue_token(services, Role.PHARMACIST),
            Role.PATIENT: await issue_token(
                services, Role.PATIENT, patient_id=ObjectId(patient["id"])
            ),
        },
    }


def _input(patient, doctor, drug, value, unit="MG", frequency="ONCE_DAILY", **more):
    return {
        "patientId": patient["id"],
        "doctorId": doctor["id"],
        "drug": drug,
        "dosage": {"value": value, "unit": unit},
        "frequency": frequency,
        "startDate": "2030-01-01",
        "cost": "10.00",
        **more,
    }


async def prescribe(client, patient, doctor, drug, value, acks=None, **more):
    data = await client.data(
        PRESCRIBE, {"input": _input(patient, doctor, drug, value, **more), "acks": acks}
    )
    return data["prescribe"]


def _draft(drug, value=None, frequency="ONCE_DAILY"):
    draft = {"drug": drug, "startDate": "2030-01-01", "frequency": frequency}
    if value is not None:
        draft["dosage"] = {"value": value, "unit": "MG"}
    return draft


async def test_the_treating_doctor_and_the_pharmacist_see_the_same_alerts(app, ward):
    results = []
    for role in (Role.DOCTOR, Role.PHARMACIST):
        async with http_client(app, ward["tokens"][role]) as client:
            data = await client.data(
                CHECK, {"p": ward["patient"]["id"], "d": _draft("Augmentin", 875, "TWICE_DAILY")}
            )
        results.append(data["medicationSafetyCheck"])
    assert results[0] == results[1]
    check = results[0]
    assert check["highestSeverity"] == "CRITICAL"
    assert check["drug"] == {
        "rxcui": "19711",
        "atc": "J01CR02",
        "display": "amoxicillin / clavulanate",
        "coded": True,
    }
    allergy = next(a for a in check["alerts"] if a["kind"] == "ALLERGY")
    assert allergy["severity"] == "CRITICAL" and len(allergy["summary"]) <= 140
    assert allergy["source"]["url"].startswith("https://")
    assert allergy["evidence"][0]["kind"] == "ALLERGY"


async def test_other_doctors_patients_and_analysts_cannot_check(app, services, ward):
    stranger = await issue_token(services, Role.DOCTOR, doctor_id=ObjectId())
    async with http_client(app, stranger) as client:
        error = await client.error(CHECK, {"p": ward["patient"]["id"], "d": _draft("aspirin")})
    assert error["extensions"]["code"] == "NOT_FOUND"
    for role in (Role.PATIENT, Role.ANALYST):
        token = ward["tokens"].get(role) or await issue_token(services, role)
        async with http_client(app, token) as client:
            error = await client.error(CHECK, {"p": ward["patient"]["id"], "d": _draft("aspirin")})
        assert error["extensions"]["code"] == "FORBIDDEN"


async def test_bad_drafts_are_refused_with_a_field(app, ward):
    async with http_client(app, ward["tokens"][Role.DOCTOR]) as client:
        error = await client.error(
            CHECK, {"p": ward["patient"]["id"], "d": {"drug": " ", "startDate": "2030-01-01"}}
        )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_critical_alert_refuses_until_each_is_acknowledged(app, ward):
    patient, doctor = ward["patient"], ward["doctor"]
    async with http_client(app, ward["tokens"][Role.DOCTOR]) as client:
        refused = await prescribe(
            client, patient, doctor, "Clarithromycin", 500, frequency="TWICE_DAILY"
        )
        assert refused["__typename"] == "PrescriptionRefused"
        critical = refused["unacknowledged"]
        assert {a["kind"] for a in critical} == {"INTERACTION"}
        # Acknowledging only some of them is not enough.
        partly = await prescribe(
            client,
            patient,
            doctor,
            "Clarithromycin",
            500,
            frequency="TWICE_DAILY",
            acks=[{"alertId": "0" * 16, "reason": "WILL_MONITOR"}],
        )
        assert partly["__typename"] == "PrescriptionRefused"
        acks = [
            {"alertId": a["id"], "reason": "BENEFIT_OUTWEIGHS_RISK", "comment": "statin paused"}
            for a in critical
        ]
        saved = await prescribe(
            client, patient, doctor, "Clarithromycin", 500, frequency="TWICE_DAILY", acks=acks
        )
        assert saved["__typename"] == "Prescription"
        assert saved["verification"] == {"status": "PENDING_REVIEW"}
        assert [o["reason"] for o in saved["overrides"]] == ["BENEFIT_OUTWEIGHS_RISK"]
        # The legacy mutation refuses with a code instead of saving.
        error = await client.error(
            "mutation($input: CreatePrescriptionInput!) { createPrescription(input: $input) "
            "{ id } }",
            {"input": _input(patient, doctor, "Naproxen", 500)},
        )
        assert error["extensions"]["code"] == "SAFETY_ALERT_NOT_ACKNOWLEDGED"
    async with http_client(app, ward["tokens"][Role.PHARMACIST]) as pharmacist:
        seen = (await pharmacist.data(ALERTS, {"id": saved["id"]}))["prescription"]
    assert seen["overrides"] == [{"reason": "BENEFIT_OUTWEIGHS_RISK", "comment": "statin paused"}]
    assert "onc-11-cyp3a4-statins-strong-inhibitors" in {a["ruleId"] for a in seen["alerts"]}
    async with http_client(app, ward["tokens"][Role.PATIENT]) as own:
        body = await own.post(ALERTS, {"id": saved["id"]})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_no_stale_alert_after_any_clinical_write(app, services, client, ward):
    """Each write below changes the answer; the cached answer must never survive it."""
    patient = ward["patient"]
    counters = services.safety_counters
    variables = {"p": patient["id"], "d": _draft("Clarithromycin", 500, "TWICE_DAILY")}

    async def kinds():
        async with http_client(app, ward["tokens"][Role.PHARMACIST]) as pharmacist:
            data = await pharmacist.data(CHECK, variables)
        return {(a["kind"], a["ruleId"]) for a in data["medicationSafetyCheck"]["alerts"]}

    first = await kinds()
    hits = counters.hits
    assert await kinds() == first and counters.hits == hits + 1  # served from Redis
    # Stopping the simvastatin removes the interaction.
    await client.data(
        "mutation($id: ID!) { updatePrescription(id: $id, input: {status: STOPPED}) { id } }",
        {"id": ward["simvastatin"]},
    )
    assert not any(kind == "INTERACTION" for kind, _ in await kinds())
    # A new macrolide allergy adds an allergy alert.
    await client.data(
        "mutation($id: ID!) { updatePatient(id: $id, input: {allergyRecords: ["
        '{substance: "Macrolides", severity: SEVERE}]}) { id } }',
        {"id": patient["id"]},
    )
    assert ("ALLERGY", "macrolide-allergy") in await kinds()
    # Resolving it takes the alert away again.
    await client.data(
        "mutation($id: ID!) { updatePatient(id: $id, input: {allergyRecords: ["
        '{substance: "Macrolides", status: RESOLVED}]}) { id } }',
        {"id": patient["id"]},
    )
    assert not any(kind == "ALLERGY" for kind, _ in await kinds())
    # A new coded condition (long QT) adds a contraindication.
    await client.data(
        'mutation($id: ID!) { updatePatient(id: $id, input: {conditions: ["Long QT syndrome"]}) '
        "{ codedConditions { code } } }",
        {"id": patient["id"]},
    )
    assert ("CONTRAINDICATION", "qt-drugs-long-qt") in await kinds()


async def test_the_verification_lifecycle_records_who_and_when(app, services, ward):
    prescription = ward["simvastatin"]

    async def move(token, action):
        async with http_client(app, token) as client:
            return await client.post(TRANSITIONS[action] + RESULT, {"id": prescription})

    pharmacist = ward["tokens"][Role.PHARMACIST]
    early = (await move(pharmacist, "dispense"))["data"]["dispensePrescription"]
    assert early["__typename"] == "InvalidVerificationTransition"
    assert early["currentStatus"] == "PENDING_REVIEW"
    verified = (await move(pharmacist, "verify"))["data"]["verifyPrescription"]
    assert verified["verification"]["status"] == "VERIFIED"
    assert verified["verification"]["reviewedBy"] and verified["verification"]["reviewedAt"]
    again = (await move(pharmacist, "reject"))["data"]["rejectPrescription"]
    assert again["__typename"] == "InvalidVerificationTransition"
    dispensed = (await move(pharmacist, "dispense"))["data"]["dispensePrescription"]
    assert dispensed["verification"]["status"] == "DISPENSED"
    assert dispensed["verification"]["dispensedAt"] >= dispensed["verification"]["reviewedAt"]
    for role in (Role.DOCTOR, Role.PATIENT):
        body = await move(ward["tokens"][role], "verify")
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_rejection_keeps_its_reason_and_stops_counting(app, ward):
    async with http_client(app, ward["tokens"][Role.PHARMACIST]) as client:
        body = await client.data(TRANSITIONS["reject"] + RESULT, {"id": ward["simvastatin"]})
        assert body["rejectPrescription"]["verification"]["rejectionReason"] == "Use pravastatin"
        check = await client.data(
            CHECK, {"p": ward["patient"]["id"], "d": _draft("Clarithromycin", 500, "TWICE_DAILY")}
        )
    # A rejected prescription will not be dispensed: it no longer interacts.
    assert not [a for a in check["medicationSafetyCheck"]["alerts"] if a["kind"] == "INTERACTION"]


QUEUE = """query($n: Int!, $after: String, $min: AlertSeverity) {
  pharmacyQueue(first: $n, after: $after, minSeverity: $min) {
    pageInfo { hasNextPage endCursor }
    nodes { id createdAt drug patient { name }
            alerts { severity kind summary } overrides { reason } } } }"""

PLAIN = """query($n: Int!) { prescriptions(first: $n) {
  nodes { id createdAt drug patient { name } } } }"""


async def test_the_queue_is_worst_first_then_oldest_and_pages(app, services, demo):
    token = await issue_token(services, Role.PHARMACIST)
    async with http_client(app, token) as client:
        everything = (await client.data(QUEUE, {"n": 200}))["pharmacyQueue"]["nodes"]
        ranks = [max((_RANK[a["severity"]] for a in n["alerts"]), default=0) for n in everything]
        assert ranks == sorted(ranks, reverse=True)
        assert ranks[0] == 3
        same_rank = [n["createdAt"] for n, r in zip(everything, ranks, strict=True) if r == 0]
        assert same_rank == sorted(same_rank)
        first = (await client.data(QUEUE, {"n": 3}))["pharmacyQueue"]
        rest = await client.data(QUEUE, {"n": 200, "after": first["pageInfo"]["endCursor"]})
        ids = [n["id"] for n in first["nodes"]] + [n["id"] for n in rest["pharmacyQueue"]["nodes"]]
        assert ids == [n["id"] for n in everything]
        critical = (await client.data(QUEUE, {"n": 200, "min": "CRITICAL"}))["pharmacyQueue"]
        assert critical["nodes"] and all(
            any(a["severity"] == "CRITICAL" for a in n["alerts"]) for n in critical["nodes"]
        )
        assert any(n["overrides"] for n in critical["nodes"])


_RANK = {"INFO": 1, "WARNING": 2, "CRITICAL": 3}


async def test_the_queue_costs_the_same_round_trips_for_5_and_200(
    app, services, demo, mongo_counter
):
    token = await issue_token(services, Role.PHARMACIST)
    # Enough pending prescriptions for a full page of 200.
    await services.db["prescriptions"].update_many(
        {},
        {"$set": {"verification": {"status": "PENDING_REVIEW"}, "safety.rank": 0}},
    )
    counts: dict[int, list[int]] = {}
    async with http_client(app, token) as client:
        for n in (5, 200, 200):  # the second 200 is served from the alert cache
            mongo_counter.reset()
            data = await client.data(QUEUE, {"n": n})
            assert len(data["pharmacyQueue"]["nodes"]) == n
            # The request's audit batch (chain head, records) and the key vault (read
            # once per process to decrypt) do not grow with the page: leave them out.
            counts.setdefault(n, []).append(
                sum(1 for name in mongo_counter.collections if name not in PER_REQUEST)
            )
    assert counts[5][0] == counts[200][0], (counts, mongo_counter.collections)
    # caller, queue page, patients (loader), alert snapshot: patients, active prescriptions
    assert counts[200][0] <= 5 and counts[200][1] <= counts[200][0]


PER_REQUEST = {"audit_log", "audit_head", "__keyVault"}


async def test_knowledge_base_identity_is_queryable(client, services):
    data = await client.data(
        "{ knowledgeBase { version drugCount ruleCount sources { name url } } }"
    )
    info = data["knowledgeBase"]
    assert info["version"] == services.knowledge.version
    assert info["drugCount"] >= 150 and info["ruleCount"] > 100
    assert any("Phansalkar" in s["name"] for s in info["sources"])
