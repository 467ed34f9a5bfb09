"""Control for the bad-input tables: the valid inputs each case starts from are accepted,
on an app of its own (this test writes).
"""

from __future__ import annotations

from tests.bad_input.support import (
    APPOINTMENTS_BETWEEN,
    CREATE_APPOINTMENT,
    CREATE_BILL,
    CREATE_DOCTOR,
    CREATE_PATIENT,
    CREATE_PRESCRIPTION,
    DOCTOR,
    PATIENT,
    PRESCRIPTION,
    RESCHEDULE_APPOINTMENT,
    SCHEDULED,
    UNPAID_BILL,
    UPDATE_APPOINTMENT,
    UPDATE_BILL,
    UPDATE_DOCTOR,
    UPDATE_PATIENT,
    UPDATE_PRESCRIPTION,
    appointment_input,
    bill_input,
    discover_ids,
    doctor_input,
    patient_input,
    prescription_input,
    resolve,
)

# --- Control: the valid inputs the cases start from are accepted ---------------------------


async def test_the_valid_inputs_the_cases_start_from_are_accepted(client, demo):
    """Guards the tables: each bad case differs from an accepted request in one thing."""
    ids = await discover_ids(client)
    accepted = [
        (CREATE_PATIENT, {"input": patient_input()}),
        (CREATE_DOCTOR, {"input": doctor_input()}),
        (CREATE_APPOINTMENT, {"input": appointment_input()}),
        (CREATE_PRESCRIPTION, {"input": prescription_input()}),
        (CREATE_BILL, {"input": bill_input()}),
        (UPDATE_PATIENT, {"id": PATIENT, "input": {"givenName": "Renamed"}}),
        (UPDATE_DOCTOR, {"id": DOCTOR, "input": {"acceptingNewPatients": False}}),
        (UPDATE_APPOINTMENT, {"id": SCHEDULED, "input": {"reason": "Moved"}}),
        (UPDATE_PRESCRIPTION, {"id": PRESCRIPTION, "input": {"cost": "1.00", "drug": "Aspirin"}}),
        (UPDATE_BILL, {"id": UNPAID_BILL, "input": {"totalCost": "1.00", "disease": "Flu"}}),
        (RESCHEDULE_APPOINTMENT, {"id": SCHEDULED, "start": "2030-01-07T11:00:00Z"}),
        (APPOINTMENTS_BETWEEN, {"startsFrom": "2026-03-01T00:00:00Z"}),
    ]
    for query, variables in accepted:
        data = await client.data(query, resolve(variables, ids))
        assert all(value is not None for value in data.values()), (query, data)
    data = await client.data(
        "query($id: ID!) { appointment(id: $id) { start } }", {"id": ids.scheduled}
    )
    assert data["appointment"]["start"] == "2030-01-07T11:00:00Z"
