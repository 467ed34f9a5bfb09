"""Create, read, update and delete every entity through the API."""

from __future__ import annotations

from tests.factories import book, create_doctor, create_patient, future_slot


async def test_patient_lifecycle(client):
    created = await create_patient(
        client,
        conditions=["Asthma", " Asthma ", "Migraine"],
        allergies=["Penicillin"],
        contact={
            "phone": "+1 555 123 4567",
            "email": "ada@example.org",
            "address": {"city": "London"},
        },
    )
    assert created["conditions"] == ["Asthma", "Migraine"]  # trimmed, repeats dropped

    updated = await client.data(
        """mutation($id: ID!) { updatePatient(id: $id, input: {familyName: "Byron",
             contact: null}) { name contact { phone email address { city } } allergies } }""",
        {"id": created["id"]},
    )
    assert updated["updatePatient"] == {
        "name": "Ada Byron",
        "allergies": ["Penicillin"],
        "contact": {"phone": None, "email": None, "address": None},
    }
    found = await client.data('{ patients(name: "byr") { nodes { id } } }')
    assert found["patients"]["nodes"] == [{"id": created["id"]}]

    deleted = await client.data(
        "mutation($id: ID!) { deletePatient(id: $id) }", {"id": created["id"]}
    )
    assert deleted["deletePatient"] == created["id"]
    gone = await client.error("query($id: ID!) { patient(id: $id) { id } }", {"id": created["id"]})
    assert gone["extensions"]["code"] == "NOT_FOUND"


async def test_doctor_lifecycle(client):
    doctor = await create_doctor(
        client,
        availability=[
            {"dayOfWeek": "TUESDAY", "startTime": "13:00", "endTime": "17:30"},
            {"dayOfWeek": "MONDAY", "startTime": "08:00", "endTime": "12:00"},
        ],
    )
    read = await client.data(
        "query($id: ID!) { doctor(id: $id) { specialty acceptingNewPatients "
        "availability { dayOfWeek startTime endTime } } }",
        {"id": doctor["id"]},
    )
    assert read["doctor"]["availability"] == [
        {"dayOfWeek": "MONDAY", "startTime": "08:00:00", "endTime": "12:00:00"},
        {"dayOfWeek": "TUESDAY", "startTime": "13:00:00", "endTime": "17:30:00"},
    ]
    updated = await client.data(
        "mutation($id: ID!) { updateDoctor(id: $id, input: {specialty: CARDIOLOGY, "
        "acceptingNewPatients: false}) { specialty acceptingNewPatients name } }",
        {"id": doctor["id"]},
    )
    assert updated["updateDoctor"] == {
        "specialty": "CARDIOLOGY",
        "acceptingNewPatients": False,
        "name": "Gregory House",
    }
    on_tuesday = await client.data(
        '{ doctors(specialty: CARDIOLOGY, availableOn: "2030-01-01") { nodes { id } } }'
    )
    assert on_tuesday["doctors"]["nodes"] == [{"id": doctor["id"]}]
    assert (
        await client.data("mutation($id: ID!) { deleteDoctor(id: $id) }", {"id": doctor["id"]})
    )["deleteDoctor"] == doctor["id"]


async def test_prescription_lifecycle(client):
    patient, doctor = await create_patient(client), await create_doctor(client)
    created = (
        await client.data(
            """mutation($input: CreatePrescriptionInput!) { createPrescription(input: $input) {
             id drug dosage { value unit } frequency startDate endDate cost status
             patient { id } doctor { id } } }""",
            {
                "input": {
                    "patientId": patient["id"],
                    "doctorId": doctor["id"],
                    "drug": "Metformin",
                    "dosage": {"value": 500, "unit": "MG"},
                    "frequency": "TWICE_DAILY",
                    "startDate": "2030-01-01",
                    "endDate": "2030-03-31",
                    "cost": "25.1",
                }
            },
        )
    )["createPrescription"]
    assert created["cost"] == "25.10" and created["status"] == "ACTIVE"
    assert created["patient"]["id"] == patient["id"]

    stop = """mutation($id: ID!, $status: PrescriptionStatus!) {
      updatePrescription(id: $id, input: {status: $status}) { status } }"""
    stopped = await client.data(stop, {"id": created["id"], "status": "STOPPED"})
    assert stopped["updatePrescription"]["status"] == "STOPPED"
    restart = await client.error(stop, {"id": created["id"], "status": "ACTIVE"})
    assert restart["extensions"]["code"] == "CONFLICT"

    listed = await client.data(
        "query($p: ID!) { patient(id: $p) { prescriptions(status: STOPPED) { nodes { id } } } }",
        {"p": patient["id"]},
    )
    assert listed["patient"]["prescriptions"]["nodes"] == [{"id": created["id"]}]
    assert (
        await client.data(
            "mutation($id: ID!) { deletePrescription(id: $id) }", {"id": created["id"]}
        )
    )["deletePrescription"] == created["id"]


async def test_appointment_reason_update_and_nested_views(client):
    patient, doctor = await create_patient(client), await create_doctor(client)
    appointment = await book(client, patient, doctor, future_slot())
    updated = await client.data(
        'mutation($id: ID!) { updateAppointment(id: $id, input: {reason: "Headache"}) { reason } }',
        {"id": appointment["id"]},
    )
    assert updated["updateAppointment"]["reason"] == "Headache"
    views = await client.data(
        """query($p: ID!, $d: ID!) {
             patient(id: $p) { appointments { totalCount nodes { id doctor { id } } } }
             doctor(id: $d) {
               appointments(status: SCHEDULED) { nodes { id patient { id } } } } }""",
        {"p": patient["id"], "d": doctor["id"]},
    )
    assert views["patient"]["appointments"]["nodes"] == [
        {"id": appointment["id"], "doctor": {"id": doctor["id"]}}
    ]
    assert views["doctor"]["appointments"]["nodes"] == [
        {"id": appointment["id"], "patient": {"id": patient["id"]}}
    ]
