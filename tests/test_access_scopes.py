"""Least privilege, record by record: nobody reaches records their job does not need,
by id, through nested paths, or through mutations (IDOR)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from bson import ObjectId

from auth.roles import Role
from tests.conftest import http_client
from tests.factories import book, create_doctor, create_patient, future_slot
from tests.support import GraphQLClient, issue_token


@dataclass
class Side:
    patient: str
    doctor: str
    appointment: str
    prescription: str
    bill: str


async def _side(client: GraphQLClient, name: str, hour: int) -> Side:
    patient = (await create_patient(client, givenName=name, contact={"phone": "+1 555 000 0000"}))[
        "id"
    ]
    doctor = (await create_doctor(client, givenName=f"Dr{name}"))["id"]
    appointment = (await book(client, {"id": patient}, {"id": doctor}, future_slot(hour=hour)))[
        "id"
    ]
    prescription = (
        await client.data(
            "mutation($p: ID!, $d: ID!) { createPrescription(input: {patientId: $p, doctorId: $d, "
            'drug: "Metformin", dosage: {value: 500, unit: MG}, frequency: TWICE_DAILY, '
            'startDate: "2030-01-01", cost: "8.40"}) { id } }',
            {"p": patient, "d": doctor},
        )
    )["createPrescription"]["id"]
    bill = (
        await client.data(
            "mutation($p: ID!, $a: ID!) { createBill(input: {patientId: $p, appointmentId: $a, "
            'disease: "Diabetes", totalCost: "90.00"}) { id } }',
            {"p": patient, "a": appointment},
        )
    )["createBill"]["id"]
    return Side(patient, doctor, appointment, prescription, bill)


@pytest.fixture
async def sides(client):
    return await _side(client, "Alice", 9), await _side(client, "Bob", 10)


@pytest.fixture
async def as_role(app, services):
    """as_role(Role.X, side) -> a client signed in as that role, linked to `side`."""
    opened = []

    async def sign_in(role: Role, side: Side | None = None) -> GraphQLClient:
        token = await issue_token(
            services,
            role,
            patient_id=ObjectId(side.patient) if side and role is Role.PATIENT else None,
            doctor_id=ObjectId(side.doctor) if side and role is Role.DOCTOR else None,
        )
        context = http_client(app, token)
        opened.append(context)
        return await context.__aenter__()

    yield sign_in
    for context in opened:
        await context.__aexit__(None, None, None)


READS = {
    "patient": "query($id: ID!) { patient(id: $id) { id } }",
    "appointment": "query($id: ID!) { appointment(id: $id) { id } }",
    "prescription": "query($id: ID!) { prescription(id: $id) { id } }",
    "bill": "query($id: ID!) { bill(id: $id) { id } }",
}


@pytest.mark.parametrize("what", sorted(READS))
async def test_a_patient_reads_their_own_records_and_nobody_elses(sides, as_role, what):
    alice, bob = sides
    patient = await as_role(Role.PATIENT, alice)
    mine = await patient.data(READS[what], {"id": getattr(alice, what)})
    assert mine[what]["id"] == getattr(alice, what)
    theirs = await patient.error(READS[what], {"id": getattr(bob, what)})
    # Indistinguishable from a record that does not exist: no existence oracle.
    assert theirs["extensions"]["code"] == "NOT_FOUND"


async def test_lists_hold_only_what_the_caller_may_see(sides, as_role):
    alice, bob = sides
    query = """{ patients { totalCount nodes { id } } appointments { totalCount nodes { id } }
                 prescriptions { nodes { id } } bills { nodes { id } } }"""
    seen = await (await as_role(Role.PATIENT, alice)).data(query)
    assert seen["patients"] == {"totalCount": 1, "nodes": [{"id": alice.patient}]}
    assert seen["appointments"] == {"totalCount": 1, "nodes": [{"id": alice.appointment}]}
    assert seen["prescriptions"]["nodes"] == [{"id": alice.prescription}]
    assert seen["bills"]["nodes"] == [{"id": alice.bill}]

    by_doctor = await (await as_role(Role.DOCTOR, bob)).data(
        "{ patients { nodes { id } } appointments { nodes { id } } prescriptions { nodes { id } } }"
    )
    assert by_doctor["patients"]["nodes"] == [{"id": bob.patient}]
    assert by_doctor["appointments"]["nodes"] == [{"id": bob.appointment}]
    assert by_doctor["prescriptions"]["nodes"] == [{"id": bob.prescription}]


async def test_nested_paths_obey_the_same_rules(sides, as_role):
    alice, bob = sides
    patient = await as_role(Role.PATIENT, alice)
    # Bob's doctor is public, his schedule is not: only Alice's own visits would show.
    nested = await patient.data(
        "query($d: ID!) { doctor(id: $d) { name appointments { nodes { id patient { name } } } } }",
        {"d": bob.doctor},
    )
    assert nested["doctor"]["appointments"]["nodes"] == []
    doctor = await as_role(Role.DOCTOR, alice)
    other = await doctor.data(
        "query($d: ID!) { doctor(id: $d) { appointments { nodes {"
        " patient { contact { phone } } } } } }",
        {"d": bob.doctor},
    )
    assert other["doctor"]["appointments"]["nodes"] == []


async def test_a_denied_field_is_null_with_forbidden_and_the_rest_arrives(sides, as_role):
    alice, _ = sides
    pharmacist = await as_role(Role.PHARMACIST)
    body = await pharmacist.post(
        "query($id: ID!) { patient(id: $id) { name allergies conditions contact { phone } "
        "prescriptions { nodes { drug } } } }",
        {"id": alice.patient},
    )
    assert body["data"]["patient"]["allergies"] == []
    assert body["data"]["patient"]["prescriptions"]["nodes"] == [{"drug": "Metformin"}]
    assert body["data"]["patient"]["contact"] is None
    [error] = body["errors"]
    assert error["path"] == ["patient", "contact"]
    assert error["extensions"] == {"code": "FORBIDDEN", "reason": "ROLE"}


async def test_doctors_see_no_billing_amounts(sides, as_role):
    alice, _ = sides
    doctor = await as_role(Role.DOCTOR, alice)
    body = await doctor.post(
        "query($id: ID!) { appointment(id: $id) { status bill { totalCost } } }",
        {"id": alice.appointment},
    )
    assert body["data"]["appointment"] == {"status": "SCHEDULED", "bill": None}
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_analysts_see_no_patient_records(sides, as_role):
    analyst = await as_role(Role.ANALYST)
    body = await analyst.post("{ patients { totalCount } appointments { totalCount } }")
    assert body["data"] == {"patients": None, "appointments": None}
    assert {e["extensions"]["code"] for e in body["errors"]} == {"FORBIDDEN"}


MUTATIONS = {
    "cancelAppointment": (
        'mutation($id: ID!) { cancelAppointment(id: $id, reason: "x") { __typename } }',
        "appointment",
    ),
    "rescheduleAppointment": (
        "mutation($id: ID!) { rescheduleAppointment(id: $id, "
        'start: "2031-01-06T09:00:00Z") { __typename } }',
        "appointment",
    ),
    "updateAppointment": (
        'mutation($id: ID!) { updateAppointment(id: $id, input: {reason: "x"}) { id } }',
        "appointment",
    ),
    "updatePatient": (
        "mutation($id: ID!) { updatePatient(id: $id, input: {contact: {phone: "
        '"+1 555 999 9999"}}) { id } }',
        "patient",
    ),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
async def test_a_patient_cannot_change_another_patients_records(
    sides, as_role, client, services, mutation
):
    alice, bob = sides
    query, what = MUTATIONS[mutation]
    before = await services.db.appointments.find_one({"_id": ObjectId(bob.appointment)})
    patient_before = await services.db.patients.find_one({"_id": ObjectId(bob.patient)})
    error = await (await as_role(Role.PATIENT, alice)).error(query, {"id": getattr(bob, what)})
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert await services.db.appointments.find_one({"_id": ObjectId(bob.appointment)}) == before
    assert await services.db.patients.find_one({"_id": ObjectId(bob.patient)}) == patient_before


async def test_a_patient_books_only_for_themself(sides, as_role):
    alice, bob = sides
    patient = await as_role(Role.PATIENT, alice)
    for_bob = await patient.post(
        "mutation($p: ID!, $d: ID!) { createAppointment(input: {patientId: $p, doctorId: $d, "
        'start: "2031-01-06T11:00:00Z"}) { __typename } }',
        {"p": bob.patient, "d": alice.doctor},
    )
    assert for_bob["errors"][0]["extensions"] == {"code": "FORBIDDEN", "reason": "NOT_OWN_RECORD"}
    for_self = await book(patient, {"id": alice.patient}, {"id": bob.doctor}, future_slot(hour=15))
    assert for_self["__typename"] == "Appointment"
    cancelled = await patient.data(
        'mutation($id: ID!) { cancelAppointment(id: $id, reason: "Feeling better") '
        "{ ... on Appointment { status } } }",
        {"id": for_self["id"]},
    )
    assert cancelled["cancelAppointment"]["status"] == "CANCELLED"


async def test_no_one_changes_fields_their_job_does_not_cover(sides, as_role):
    alice, _ = sides
    patient = await as_role(Role.PATIENT, alice)
    diagnosis = await patient.error(
        'mutation($id: ID!) { updatePatient(id: $id, input: {conditions: ["Nothing"]}) { id } }',
        {"id": alice.patient},
    )
    assert diagnosis["extensions"]["reason"] == "INPUT_FIELD"
    own_contact = await patient.data(
        'mutation($id: ID!) { updatePatient(id: $id, input: {contact: {email: "a@example.org"}}) '
        "{ contact { email } } }",
        {"id": alice.patient},
    )
    assert own_contact["updatePatient"]["contact"]["email"] == "a@example.org"
    doctor = await as_role(Role.DOCTOR, alice)
    renamed = await doctor.error(
        'mutation($id: ID!) { updatePatient(id: $id, input: {givenName: "Eve"}) { id } }',
        {"id": alice.patient},
    )
    assert renamed["extensions"]["reason"] == "INPUT_FIELD"
    diagnosed = await doctor.data(
        'mutation($id: ID!) { updatePatient(id: $id, input: {conditions: ["Asthma"]}) '
        "{ conditions } }",
        {"id": alice.patient},
    )
    assert diagnosed["updatePatient"]["conditions"] == ["Asthma"]


async def test_mass_assignment_of_privileged_fields_is_impossible(anonymous, as_role, sides):
    alice, _ = sides
    registered = await anonymous.post(
        'mutation { register(input: {email: "m@example.org", password: "a long unusual phrase", '
        'givenName: "M", familyName: "A", birthDate: "1990-01-01", sex: OTHER, role: ADMIN}) '
        "{ message } }"
    )
    assert registered["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    patient = await as_role(Role.PATIENT, alice)
    linked = await patient.post(
        'mutation($id: ID!) { updatePatient(id: $id, input: {userId: "x"}) { id } }',
        {"id": alice.patient},
    )
    assert linked["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_doctors_prescribe_only_as_themselves_for_their_patients(sides, as_role):
    alice, bob = sides
    doctor = await as_role(Role.DOCTOR, alice)
    prescribe = (
        "mutation($p: ID!, $d: ID!) { createPrescription(input: {patientId: $p, "
        'doctorId: $d, drug: "Aspirin", dosage: {value: 75, unit: MG}, '
        'frequency: ONCE_DAILY, startDate: "2030-01-01", cost: "1.00"}) { id } }'
    )
    ok = await doctor.data(prescribe, {"p": alice.patient, "d": alice.doctor})
    assert ok["createPrescription"]["id"]
    unrelated = await doctor.error(prescribe, {"p": bob.patient, "d": alice.doctor})
    assert unrelated["extensions"]["code"] == "NOT_FOUND"
    impersonating = await doctor.error(prescribe, {"p": alice.patient, "d": bob.doctor})
    assert impersonating["extensions"]["reason"] == "NOT_OWN_RECORD"
