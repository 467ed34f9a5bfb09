"""Break-glass access: a time-boxed grant for one patient, audited as emergency,
listed for administrators, revocable, and gone when it expires."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from auth.roles import Role
from datasources.documents import utcnow
from tests.conftest import http_client
from tests.support import audit_records

REQUEST = """mutation($p: ID!, $reason: String!) {
  requestEmergencyAccess(patientId: $p, reason: $reason) {
    id patientId doctorId reason active grantedAt expiresAt } }"""
REASON = "Unconscious patient in the emergency department; need allergies before treatment."
CHART = "query($id: ID!) { patient(id: $id) { name allergies contact { phone } } }"
GRANTS = """query($active: Boolean) { emergencyAccessGrants(active: $active, first: 10) {
  nodes { id patientId doctorId reason active revokedAt revokedBy } } }"""
REVOKE = "mutation($id: ID!) { revokeEmergencyAccess(id: $id) { id active revokedAt } }"


async def _as(app, token, query, variables=None):
    async with http_client(app, token) as caller:
        return await caller.post(query, variables)


async def _grant(app, world, others) -> dict:
    body = await _as(app, others.doctor_token, REQUEST, {"p": world.patient, "reason": REASON})
    assert "errors" not in body, body
    return body["data"]["requestEmergencyAccess"]


async def test_a_grant_opens_one_patient_for_its_time_and_is_audited_as_emergency(
    app, services, world, others
):
    before = await _as(app, others.doctor_token, CHART, {"id": world.patient})
    assert before["errors"][0]["extensions"]["code"] == "NOT_FOUND"

    grant = await _grant(app, world, others)
    assert grant["active"] is True and grant["patientId"] == world.patient
    minutes = (
        (await services.db["emergency_grants"].find_one({"_id": ObjectId(grant["id"])}))[
            "expiresAt"
        ]
        - utcnow()
    ).total_seconds() / 60
    assert 59 < minutes <= 60  # the configured default

    chart = await _as(app, others.doctor_token, CHART, {"id": world.patient})
    assert "errors" not in chart, chart
    assert chart["data"]["patient"]["contact"]["phone"] == "+1 555 000 1111"

    # Only that patient: the rest of the hospital stays out of reach, on every path.
    other = await _as(app, others.doctor_token, CHART, {"id": others.patient})
    assert other["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    listed = await _as(app, others.doctor_token, "{ patients { nodes { id } } }")
    assert [p["id"] for p in listed["data"]["patients"]["nodes"]] == [world.patient]

    # Prescribing is allowed under the grant.
    prescribed = await _as(
        app,
        others.doctor_token,
        """mutation($input: CreatePrescriptionInput!) {
             createPrescription(input: $input) { id } }""",
        {
            "input": {
                "patientId": world.patient,
                "doctorId": others.doctor,
                "drug": "Adrenaline",
                "dosage": {"value": 0.5, "unit": "MG"},
                "frequency": "ONCE",
                "startDate": "2026-01-05",
                "cost": "3.00",
            }
        },
    )
    assert "errors" not in prescribed, prescribed

    records = await audit_records(services)
    granted = [r for r in records if r["action"] == "EMERGENCY_ACCESS"]
    assert len(granted) == 1 and granted[0]["actor"]["emergencyGrantIds"] == [grant["id"]]
    reads = [r for r in records if r["action"] == "READ" and r["actor"]["emergency"]]
    assert reads, "reads under the grant are audited as emergency"
    assert all(e["emergencyGrantId"] == grant["id"] for r in reads for e in r["entities"])
    writes = [r for r in records if r["action"] == "CREATE" and r["actor"]["emergency"]]
    assert writes and writes[0]["entities"][0]["resourceType"] == "Prescription"

    log = await _as(
        app, world.tokens[Role.PATIENT], "{ myAccessLog { nodes { staffName emergency } } }"
    )
    assert {"staffName": "Otto Other", "emergency": True} in log["data"]["myAccessLog"]["nodes"]


async def test_expiry_ends_the_grant(app, services, world, others):
    grant = await _grant(app, world, others)
    await services.db["emergency_grants"].update_one(
        {"_id": ObjectId(grant["id"])}, {"$set": {"expiresAt": utcnow() - timedelta(seconds=1)}}
    )
    body = await _as(app, others.doctor_token, CHART, {"id": world.patient})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    past = await _as(app, world.tokens[Role.ADMIN], GRANTS, {"active": False})
    assert [g["id"] for g in past["data"]["emergencyAccessGrants"]["nodes"]] == [grant["id"]]
    assert past["data"]["emergencyAccessGrants"]["nodes"][0]["active"] is False


async def test_an_admin_sees_and_revokes_grants(app, services, world, others):
    grant = await _grant(app, world, others)
    active = await _as(app, world.tokens[Role.ADMIN], GRANTS, {"active": True})
    [listed] = active["data"]["emergencyAccessGrants"]["nodes"]
    assert listed["reason"] == REASON and listed["doctorId"] == others.doctor

    revoked = await _as(app, world.tokens[Role.ADMIN], REVOKE, {"id": grant["id"]})
    assert revoked["data"]["revokeEmergencyAccess"]["active"] is False
    body = await _as(app, others.doctor_token, CHART, {"id": world.patient})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    still = await _as(app, world.tokens[Role.ADMIN], GRANTS, {"active": True})
    assert still["data"]["emergencyAccessGrants"]["nodes"] == []
    # Doctors may not list or revoke grants.
    denied = await _as(app, others.doctor_token, REVOKE, {"id": grant["id"]})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_requests_need_a_reason_a_patient_and_no_existing_relationship(app, world, others):
    short = await _as(app, others.doctor_token, REQUEST, {"p": world.patient, "reason": "urgent"})
    assert short["errors"][0]["extensions"] == {"code": "BAD_USER_INPUT", "field": "reason"}
    missing = await _as(app, others.doctor_token, REQUEST, {"p": str(ObjectId()), "reason": REASON})
    assert missing["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    treating = await _as(
        app, world.tokens[Role.DOCTOR], REQUEST, {"p": world.patient, "reason": REASON}
    )
    assert treating["errors"][0]["extensions"]["code"] == "CONFLICT"
    for role in (Role.PATIENT, Role.PHARMACIST, Role.ADMIN):
        body = await _as(app, world.tokens[role], REQUEST, {"p": world.patient, "reason": REASON})
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN", role
    # Asking twice while a grant is in force returns that grant.
    first = await _grant(app, world, others)
    assert (await _grant(app, world, others))["id"] == first["id"]
