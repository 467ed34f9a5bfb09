"""Nested totalCount goes through loaders: one grouped count per level and relation.

Before, each parent's totalCount was a count query of its own, outside the dataloaders
and the cost estimate: a doctor asking 500 patients for two nested counts sent about
1,000 slow counts at once and could exhaust the connection pool for everyone.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from bson import ObjectId

from auth.roles import Role
from tests.conftest import http_client
from tests.support import MongoCommandCounter, SqlStatementCounter, issue_token

DOCTORS_PATIENTS = """query($n: Int!) { patients(first: $n) { nodes { id
  appointments(first: 1) { totalCount }
  prescriptions(first: 1) { totalCount }
  bills(first: 1) { totalCount } } } }"""

# The two operations of the issue, as a doctor and as a patient with no records yet.
DOCTOR_DOS = """{ patients(first: 500) { nodes {
  appointments(first: 1) { totalCount } prescriptions(first: 1) { totalCount } } } }"""
PATIENT_DOS = (
    "{ "
    + " ".join(
        f"a{n}: doctors(first: 30) {{ nodes {{ appointments(first: 1) {{ totalCount }} }} }}"
        for n in range(45)
    )
    + " }"
)


async def _busiest_doctor(services) -> ObjectId:
    cursor = await services.db["appointments"].aggregate(
        [{"$group": {"_id": "$doctorId", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}, {"$limit": 1}]
    )
    return (await cursor.to_list())[0]["_id"]


def _codes(body: dict[str, Any]) -> Counter[str]:
    return Counter(e.get("extensions", {}).get("code") for e in body.get("errors") or [])


async def test_nested_counts_are_right_and_cost_the_same_for_1_and_all_parents(
    app, services, demo, mongo_counter: MongoCommandCounter, sql_counter: SqlStatementCounter
):
    async with http_client(app, await issue_token(services, Role.ADMIN)) as admin:
        trips = {}
        for n in (1, 500):
            mongo_counter.reset()
            sql_counter.reset()
            data = await admin.data(DOCTORS_PATIENTS, {"n": n})
            trips[n] = (len(mongo_counter.commands), len(sql_counter.statements))
            patients = data["patients"]["nodes"]
        # users (authentication), patients, appointments' page and count, prescriptions'
        # page and count; SQL: bills' pages and counts.
        assert trips[1] == trips[500] == (6, 2), (trips, mongo_counter.commands)
    assert len(patients) == demo["patients"] > 1
    for node in patients[:8]:
        patient_id = ObjectId(node["id"])
        expected = await services.db["appointments"].count_documents({"patientId": patient_id})
        assert node["appointments"]["totalCount"] == expected
        expected = await services.db["prescriptions"].count_documents({"patientId": patient_id})
        assert node["prescriptions"]["totalCount"] == expected


async def test_nested_counts_keep_each_callers_scope(app, services, demo):
    doctor_id = await _busiest_doctor(services)
    token = await issue_token(services, Role.DOCTOR, doctor_id=doctor_id)
    async with http_client(app, token) as doctor:
        data = await doctor.data(
            DOCTORS_PATIENTS.replace("bills(first: 1) { totalCount }", ""), {"n": 500}
        )
    for node in data["patients"]["nodes"][:8]:
        patient_id = ObjectId(node["id"])
        # A doctor sees their own schedule only: the count is of their visits.
        expected = await services.db["appointments"].count_documents(
            {"patientId": patient_id, "doctorId": doctor_id}
        )
        assert node["appointments"]["totalCount"] == expected


async def test_the_denial_of_service_operations_are_answered_and_the_server_stays_up(
    app, services, demo, mongo_counter: MongoCommandCounter
):
    doctor_token = await issue_token(
        services, Role.DOCTOR, doctor_id=await _busiest_doctor(services)
    )
    fresh_patient = await issue_token(services, Role.PATIENT, patient_id=ObjectId())
    for token, operation, budget in (
        # 9: the doctor's break-glass grants are read once per request (they join the
        # care relationship uncached: they start and expire without a write).
        (doctor_token, DOCTOR_DOS, 9),
        (fresh_patient, PATIENT_DOS, 5),
    ):
        async with http_client(app, token) as caller:
            mongo_counter.reset()
            body = await caller.post(operation)
            codes = _codes(body)
            assert "INTERNAL_SERVER_ERROR" not in codes, body.get("errors")
            # Answered (or refused with a code before any resolver ran).
            assert body.get("data") is not None or set(codes) <= {"COST_ESTIMATED_TOO_EXPENSIVE"}
            # A bounded number of queries, not one per parent or alias.
            assert len(mongo_counter.commands) <= budget, Counter(mongo_counter.collections)
            # The next request is served normally.
            me = await caller.data("{ me { role } }")
            assert me["me"]["role"] in ("DOCTOR", "PATIENT")
            assert (await caller.http.get("/healthz")).status_code == 200


async def test_counts_are_never_stale_after_a_mutation(app, services, demo):
    """Counts, top-level and nested, reflect a write at the next request."""
    scheduled = await services.db["appointments"].find_one({"status": "SCHEDULED"})
    query = """query($doctor: ID!) {
      appointments(first: 1, status: SCHEDULED) { totalCount }
      doctor(id: $doctor) { appointments(first: 1, status: SCHEDULED) { totalCount } } }"""
    variables = {"doctor": str(scheduled["doctorId"])}
    async with http_client(app, await issue_token(services, Role.ADMIN)) as admin:
        before = await admin.data(query, variables)
        cancelled = await admin.data(
            'mutation($id: ID!) { cancelAppointment(id: $id, reason: "ill") { __typename } }',
            {"id": str(scheduled["_id"])},
        )
        assert cancelled["cancelAppointment"]["__typename"] == "Appointment"
        after = await admin.data(query, variables)
    assert after["appointments"]["totalCount"] == before["appointments"]["totalCount"] - 1
    nested_before = before["doctor"]["appointments"]["totalCount"]
    assert after["doctor"]["appointments"]["totalCount"] == nested_before - 1
