"""The audit trail end to end: reads and writes of PHI leave records, denied attempts
too, nothing else does; the chain survives concurrency and shows tampering; the
trail fails closed."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect

from audit.records import Action, Actor, Channel, Entity, Outcome, build_record
from auth.roles import Role
from datasources.audit_log import AuditLog
from tests.conftest import http_client
from tests.support import audit_records

CONTACT_QUERY = """query PatientContact($id: ID!) {
  patient(id: $id) { name contact { phone address { city } } } }"""
ACCESS_LOG = """{ myAccessLog(first: 20) { nodes {
  action outcome staffName staffRole emergency resourceTypes fields } } }"""
INTEGRITY = "{ auditIntegrity { ok checkedRecords firstBadSeq problem } }"


async def _as(app, token, query, variables=None):
    async with http_client(app, token) as caller:
        return await caller.post(query, variables)


async def test_treating_doctor_reading_contact_details_is_audited_and_the_patient_sees_it(
    app, services, world
):
    before = len(await audit_records(services))
    body = await _as(app, world.tokens[Role.DOCTOR], CONTACT_QUERY, {"id": world.patient})
    assert body["data"]["patient"]["contact"]["phone"] == "+1 555 000 1111"
    records = (await audit_records(services))[before:]
    assert len(records) == 1, "one request, one record"
    record = records[0]
    assert record["action"] == "READ" and record["outcome"] == "SUCCESS"
    assert record["actor"]["role"] == "DOCTOR" and record["actor"]["emergency"] is False
    assert record["operation"]["name"] == "PatientContact"
    assert record["operation"]["clientAddress"] and record["operation"]["requestId"]
    [entity] = record["entities"]
    assert entity == {
        "resourceType": "Patient",
        "recordId": world.patient,
        "patientId": world.patient,
        "fields": ["contact", "contact.address", "contact.address.city", "contact.phone", "name"],
    }
    assert "+1 555" not in str(record), "values are never recorded"

    log = await _as(app, world.tokens[Role.PATIENT], ACCESS_LOG)
    entries = log["data"]["myAccessLog"]["nodes"]
    assert {
        "action": "READ",
        "outcome": "SUCCESS",
        "staffName": "Doc World",
        "staffRole": "DOCTOR",
        "emergency": False,
        "resourceTypes": ["Patient"],
        "fields": entity["fields"],
    } in entries
    # The patient's own reads (the access log query itself reads no PHI) are not listed.
    assert all(e["staffRole"] != "PATIENT" for e in entries)


async def test_a_patient_never_sees_other_patients_in_their_access_log(
    app, services, world, others
):
    both = """{ patients(first: 10) { nodes { name } } }"""
    await _as(app, world.tokens[Role.ADMIN], both)
    log = await _as(app, world.tokens[Role.PATIENT], ACCESS_LOG)
    for entry in log["data"]["myAccessLog"]["nodes"]:
        assert "Olive" not in str(entry)
    last = (await audit_records(services))[-1]
    assert set(last["patientIds"]) == {world.patient, others.patient}


async def test_a_request_reading_no_phi_writes_nothing(app, services, world):
    before = len(await audit_records(services))
    for query in (
        "{ doctors(first: 5) { nodes { name specialty } } }",
        "{ me { email role } }",
        "{ patients(first: 5) { totalCount nodes { id } } }",
    ):
        body = await _as(app, world.tokens[Role.ADMIN], query)
        assert "errors" not in body, body
    assert len(await audit_records(services)) == before


async def test_denied_attempts_are_audited(app, services, world, others):
    before = len(await audit_records(services))
    # Out of the other doctor's scope: NOT_FOUND, exactly like a record that does not exist.
    body = await _as(app, others.doctor_token, CONTACT_QUERY, {"id": world.patient})
    assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    # Pharmacists see no contact details: FORBIDDEN for that field.
    body = await _as(app, world.tokens[Role.PHARMACIST], CONTACT_QUERY, {"id": world.patient})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    # Analysts may not look patients up at all.
    body = await _as(app, world.tokens[Role.ANALYST], CONTACT_QUERY, {"id": world.patient})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    records = (await audit_records(services))[before:]
    outcomes = [(r["actor"]["role"], r["action"], r["outcome"]) for r in records]
    assert ("DOCTOR", "READ", "NOT_FOUND") in outcomes
    assert ("PHARMACIST", "READ", "FORBIDDEN") in outcomes
    assert ("PHARMACIST", "READ", "SUCCESS") in outcomes  # the name was delivered
    assert ("ANALYST", "READ", "FORBIDDEN") in outcomes
    not_found = next(r for r in records if r["outcome"] == "NOT_FOUND")
    assert not_found["entities"][0]["recordId"] == world.patient
    assert not_found["entities"][0]["patientId"] is None  # nothing learned, nothing leaked
    forbidden = next(
        r for r in records if r["actor"]["role"] == "PHARMACIST" and r["outcome"] == "FORBIDDEN"
    )
    assert forbidden["entities"][0]["fields"] == ["contact"]


async def test_writes_are_audited_with_the_fields_they_changed(app, services, world):
    before = len(await audit_records(services))
    body = await _as(
        app,
        world.tokens[Role.PATIENT],
        """mutation($id: ID!) {
             updatePatient(id: $id, input: {contact: {phone: "+44 20 7946 0000"}}) { id } }""",
        {"id": world.patient},
    )
    assert "errors" not in body, body
    [write] = (await audit_records(services))[before:]
    assert write["action"] == "UPDATE" and write["actor"]["role"] == "PATIENT"
    assert write["entities"][0]["fields"] == ["contact"]


async def test_audit_failure_withholds_phi_and_commits_no_write(app, services, world, monkeypatch):
    async def broken(self, records, session, **_):
        raise AutoReconnect("audit store down")

    monkeypatch.setattr(AuditLog, "_append_once", broken)
    async with http_client(app, world.tokens[Role.DOCTOR]) as doctor:
        response = await doctor.http.post(
            "/graphql", json={"query": CONTACT_QUERY, "variables": {"id": world.patient}}
        )
        assert response.status_code == 503
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "AUDIT_UNAVAILABLE"
        assert "data" not in body and "+44" not in response.text
        # Touching no PHI keeps working.
        fine = await doctor.post("{ doctors(first: 2) { nodes { name } } }")
        assert "errors" not in fine
    async with http_client(app, world.tokens[Role.PATIENT]) as patient:
        response = await patient.http.post(
            "/graphql",
            json={
                "query": """mutation($id: ID!) {
                  updatePatient(id: $id, input: {contact: {phone: "+1 555 0100"}}) { id } }""",
                "variables": {"id": world.patient},
            },
        )
    assert response.status_code in (200, 503)
    stored = await services.db["patients"].find_one({"_id": ObjectId(world.patient)})
    assert "+1 555 0100" not in str(stored), "the change committed without its audit record"


async def _append_one(log: AuditLog, i: int) -> None:
    record = build_record(
        actor=Actor(f"u{i}", "DOCTOR"),
        channel=Channel(None, None, f"r{i}", "127.0.0.1"),
        action=Action.READ,
        outcome=Outcome.SUCCESS,
        entities=[Entity("Patient", f"p{i}", f"p{i}", {"name"})],
    )
    await log.append([record, dict(record)])


async def test_concurrent_writers_in_several_processes_keep_the_chain_gapless(services):
    # Two AuditLog objects stand for two server processes: separate locks, one database.
    key = services.audit_log.key
    first, second = AuditLog(services.db, key), AuditLog(services.db, key)
    await asyncio.gather(*(_append_one(first if i % 2 else second, i) for i in range(24)))
    seqs = [r["seq"] for r in await audit_records(services)]
    assert seqs == list(range(1, 49))
    verdict = await services.audit_log.verify()
    assert verdict.ok and verdict.checked == 48


@pytest.mark.parametrize("tamper", ["edit", "delete", "insert", "reorder"])
async def test_audit_integrity_names_the_record_tampered_with(app, services, world, tamper):
    for _ in range(3):
        await _as(app, world.tokens[Role.DOCTOR], CONTACT_QUERY, {"id": world.patient})
    ok = await _as(app, world.tokens[Role.ADMIN], INTEGRITY)
    assert ok["data"]["auditIntegrity"]["ok"] is True
    records = await audit_records(services)
    assert len(records) >= 6
    log = services.db["audit_log"]
    target = records[3]  # seq 4
    if tamper == "edit":
        await log.update_one(
            {"_id": target["_id"]}, {"$set": {"operation.clientAddress": "10.6.6.6"}}
        )
    elif tamper == "delete":
        await log.delete_one({"_id": target["_id"]})
    elif tamper == "insert":
        # Make room by shifting the later records up, then insert a forged record at seq 4.
        for record in reversed(records[3:]):
            await log.update_one({"_id": record["_id"]}, {"$inc": {"seq": 1}})
        forged = {k: v for k, v in target.items() if k != "_id"}
        forged["actor"] = {**forged["actor"], "userId": "intruder"}
        await log.insert_one(forged)
    elif tamper == "reorder":
        a, b = records[3], records[4]
        await log.update_one({"_id": a["_id"]}, {"$set": {"seq": -1}})
        await log.update_one({"_id": b["_id"]}, {"$set": {"seq": 4}})
        await log.update_one({"_id": a["_id"]}, {"$set": {"seq": 5}})
    body = await _as(app, world.tokens[Role.ADMIN], INTEGRITY)
    integrity = body["data"]["auditIntegrity"]
    assert integrity["ok"] is False
    assert integrity["firstBadSeq"] == 4, integrity
    assert integrity["checkedRecords"] == 3


async def test_audit_events_filter_and_page_for_admins(app, services, world):
    await _as(app, world.tokens[Role.DOCTOR], CONTACT_QUERY, {"id": world.patient})
    await _as(app, world.tokens[Role.DOCTOR], CONTACT_QUERY, {"id": world.patient})
    query = """query($p: ID, $after: String) {
      auditEvents(patientId: $p, action: READ, first: 1, after: $after) {
        pageInfo { hasNextPage endCursor }
        nodes { seq actorRole action outcome operationName entities { patientId fields } } } }"""
    first = await _as(app, world.tokens[Role.ADMIN], query, {"p": world.patient})
    assert "errors" not in first, first
    page = first["data"]["auditEvents"]
    assert page["pageInfo"]["hasNextPage"] is True
    [newest] = page["nodes"]
    assert newest["actorRole"] == "DOCTOR" and newest["operationName"] == "PatientContact"
    second = await _as(
        app,
        world.tokens[Role.ADMIN],
        query,
        {"p": world.patient, "after": page["pageInfo"]["endCursor"]},
    )
    assert second["data"]["auditEvents"]["nodes"][0]["seq"] < newest["seq"]
    # Not for anyone else.
    denied = await _as(app, world.tokens[Role.DOCTOR], query, {"p": world.patient})
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_billing_writes_are_audited_and_roll_back_without_their_record(
    app, services, world, monkeypatch
):
    before = len(await audit_records(services))
    update = """mutation($id: ID!, $paid: Boolean!) {
      updateBill(id: $id, input: {paid: $paid}) { id paid } }"""
    body = await _as(app, world.tokens[Role.ADMIN], update, {"id": world.bill, "paid": True})
    assert "errors" not in body, body
    writes = [r for r in (await audit_records(services))[before:] if r["action"] == "UPDATE"]
    assert writes and writes[0]["entities"][0]["resourceType"] == "Bill"
    assert writes[0]["entities"][0]["patientId"] == world.patient

    async def broken(self, records, session, **_):
        raise AutoReconnect("audit store down")

    monkeypatch.setattr(AuditLog, "_append_once", broken)
    async with http_client(app, world.tokens[Role.ADMIN]) as admin:
        response = await admin.http.post(
            "/graphql", json={"query": update, "variables": {"id": world.bill, "paid": False}}
        )
    assert response.status_code == 503
    monkeypatch.undo()
    # The lost connection also opened the mongodb circuit (runtime/dependencies.py): let
    # its probe see the store back, as it would within half a second.
    await services.dependencies.check_all()
    check = await _as(
        app,
        world.tokens[Role.ADMIN],
        "query($id: ID!) { bill(id: $id) { paid } }",
        {"id": world.bill},
    )
    assert check["data"]["bill"]["paid"] is True, "the change committed without its record"
