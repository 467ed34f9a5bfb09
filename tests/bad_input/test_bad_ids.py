"""Malformed and unknown ids (lookups, mutations, references, list filters) and records
that refer to each other: a typed error, and nothing changed.
"""

from __future__ import annotations

import pytest

from tests.bad_input.support import (
    APPOINTMENT,
    CANCEL_APPOINTMENT,
    CASE,
    COMPLETE_APPOINTMENT,
    CREATE_APPOINTMENT,
    CREATE_BILL,
    CREATE_PRESCRIPTION,
    DELETE_APPOINTMENT,
    DELETE_BILL,
    DELETE_DOCTOR,
    DELETE_PATIENT,
    DELETE_PRESCRIPTION,
    DOCTOR,
    FINISHED_PRESCRIPTION,
    FREE_SLOT,
    LOOKUP,
    MALFORMED_ID,
    OTHER_PATIENT,
    PAID_BILL,
    RESCHEDULE_APPOINTMENT,
    UNKNOWN_BILL_ID,
    UNKNOWN_ID,
    UPDATE_APPOINTMENT,
    UPDATE_BILL,
    UPDATE_DOCTOR,
    UPDATE_PATIENT,
    UPDATE_PRESCRIPTION,
    appointment_input,
    assert_refused,
    bill_input,
    case,
    list_of,
    prescription_input,
)

# --- Ids ----------------------------------------------------------------------------------

MALFORMED_OBJECT_IDS = [
    MALFORMED_ID,
    "",
    "123",
    "abcdefghijkl",  # 12 characters: ObjectId bytes, not hex
    "0123456789abcdef0123456z",
    "0123456789abcdef012345678",
]
MALFORMED_BILL_IDS = [MALFORMED_ID, "", "-1", "1.5", "1e3", " 7", "²", "9" * 20, UNKNOWN_ID]


@pytest.mark.parametrize("bad_id", MALFORMED_OBJECT_IDS)
@pytest.mark.parametrize("entity", ["patient", "doctor", "appointment", "prescription"])
async def test_lookup_with_malformed_id_is_bad_user_input(api, ids, entity, bad_id):
    await assert_refused(api, ids, LOOKUP[entity], {"id": bad_id}, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize("bad_id", MALFORMED_BILL_IDS)
async def test_bill_lookup_with_malformed_id_is_bad_user_input(api, ids, bad_id):
    await assert_refused(api, ids, LOOKUP["bill"], {"id": bad_id}, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize(
    ("entity", "unknown_id"),
    [
        ("patient", UNKNOWN_ID),
        ("doctor", UNKNOWN_ID),
        ("appointment", UNKNOWN_ID),
        ("prescription", UNKNOWN_ID),
        ("bill", UNKNOWN_BILL_ID),
    ],
)
async def test_lookup_of_unknown_id_is_not_found(api, ids, entity, unknown_id):
    error = await assert_refused(api, ids, LOOKUP[entity], {"id": unknown_id}, "NOT_FOUND")
    assert error["extensions"]["id"] == unknown_id


# Mutations on an existing record, with otherwise valid arguments; the tests add the id.
ID_MUTATIONS = [
    case("updatePatient", UPDATE_PATIENT, input={"givenName": "Renamed"}),
    case("updatePatient-no-changes", UPDATE_PATIENT, input={}),
    case("deletePatient", DELETE_PATIENT),
    case("updateDoctor", UPDATE_DOCTOR, input={"acceptingNewPatients": False}),
    case("deleteDoctor", DELETE_DOCTOR),
    case("updateAppointment", UPDATE_APPOINTMENT, input={"reason": "Moved"}),
    case("rescheduleAppointment", RESCHEDULE_APPOINTMENT, start=FREE_SLOT),
    case("cancelAppointment", CANCEL_APPOINTMENT, reason="Patient request"),
    case("completeAppointment", COMPLETE_APPOINTMENT),
    case("deleteAppointment", DELETE_APPOINTMENT),
    case("updatePrescription", UPDATE_PRESCRIPTION, input={"drug": "Aspirin"}),
    case("deletePrescription", DELETE_PRESCRIPTION),
]
BILL_ID_MUTATIONS = [
    case("updateBill", UPDATE_BILL, input={"paid": True}),
    case("deleteBill", DELETE_BILL),
]


@pytest.mark.parametrize(CASE, ID_MUTATIONS)
async def test_mutation_with_malformed_id_is_bad_user_input(api, ids, query, variables, field):
    variables = {**variables, "id": MALFORMED_ID}
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize(CASE, ID_MUTATIONS)
async def test_mutation_with_unknown_id_is_not_found(api, ids, query, variables, field):
    await assert_refused(api, ids, query, {**variables, "id": UNKNOWN_ID}, "NOT_FOUND")


@pytest.mark.parametrize("bad_id", [MALFORMED_ID, "-1", "²", UNKNOWN_ID])
@pytest.mark.parametrize(CASE, BILL_ID_MUTATIONS)
async def test_bill_mutation_with_malformed_id_is_bad_user_input(
    api, ids, query, variables, field, bad_id
):
    variables = {**variables, "id": bad_id}
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize(CASE, BILL_ID_MUTATIONS)
async def test_bill_mutation_with_unknown_id_is_not_found(api, ids, query, variables, field):
    await assert_refused(api, ids, query, {**variables, "id": UNKNOWN_BILL_ID}, "NOT_FOUND")


def reference_cases(bad_id: str) -> list:
    """Creates whose input refers to another record by `bad_id`."""
    return [
        case("appointment-patient", CREATE_APPOINTMENT, "patientId",
             input=appointment_input(patientId=bad_id)),
        case("appointment-doctor", CREATE_APPOINTMENT, "doctorId",
             input=appointment_input(doctorId=bad_id)),
        case("prescription-patient", CREATE_PRESCRIPTION, "patientId",
             input=prescription_input(patientId=bad_id)),
        case("prescription-doctor", CREATE_PRESCRIPTION, "doctorId",
             input=prescription_input(doctorId=bad_id)),
        case("bill-patient", CREATE_BILL, "patientId", input=bill_input(patientId=bad_id)),
        case("bill-appointment", CREATE_BILL, "appointmentId",
             input=bill_input(appointmentId=bad_id)),
    ]  # fmt: skip


@pytest.mark.parametrize(CASE, reference_cases(MALFORMED_ID))
async def test_create_with_malformed_reference_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(CASE, reference_cases(UNKNOWN_ID))
async def test_create_with_unknown_reference_is_not_found(api, ids, query, variables, field):
    error = await assert_refused(api, ids, query, variables, "NOT_FOUND")
    assert error["extensions"]["id"] == UNKNOWN_ID


LIST_FILTERS_BY_ID = [
    case("appointments-doctorId", list_of("appointments", doctorId="ID"), "doctorId",
         doctorId=MALFORMED_ID),
    case("appointments-patientId", list_of("appointments", patientId="ID"), "patientId",
         patientId=MALFORMED_ID),
    case("prescriptions-patientId", list_of("prescriptions", patientId="ID"), "patientId",
         patientId=MALFORMED_ID),
    case("prescriptions-doctorId", list_of("prescriptions", doctorId="ID"), "doctorId",
         doctorId=MALFORMED_ID),
    case("bills-patientId", list_of("bills", patientId="ID"), "patientId",
         patientId=MALFORMED_ID),
]  # fmt: skip


@pytest.mark.parametrize(CASE, LIST_FILTERS_BY_ID)
async def test_list_filter_with_malformed_id_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


# --- Records that refer to each other -----------------------------------------------------


async def test_bill_for_an_appointment_of_another_patient_is_bad_user_input(api, ids):
    variables = {"input": bill_input(patientId=OTHER_PATIENT, appointmentId=APPOINTMENT)}
    await assert_refused(api, ids, CREATE_BILL, variables, "BAD_USER_INPUT", "appointmentId")


async def test_second_bill_for_the_same_appointment_is_conflict(api, ids):
    variables = {"input": bill_input(appointmentId=APPOINTMENT)}
    await assert_refused(api, ids, CREATE_BILL, variables, "CONFLICT")


async def test_deleting_a_patient_with_appointments_is_conflict_and_keeps_the_patient(api, ids):
    patient = ids.patient
    await assert_refused(api, ids, DELETE_PATIENT, {"id": patient}, "CONFLICT")
    data = await api.data(
        "query($id: ID!) { patient(id: $id) { id appointments { totalCount } } }", {"id": patient}
    )
    assert data["patient"]["id"] == patient
    assert data["patient"]["appointments"]["totalCount"] > 0


async def test_deleting_a_paid_bill_is_conflict_and_keeps_the_bill(api, ids):
    await assert_refused(api, ids, DELETE_BILL, {"id": PAID_BILL}, "CONFLICT")
    data = await api.data("query($id: ID!) { bill(id: $id) { id paid } }", {"id": ids.paid_bill})
    assert data["bill"] == {"id": ids.paid_bill, "paid": True}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        pytest.param(DELETE_DOCTOR, {"id": DOCTOR}, id="doctor-with-appointments"),
        pytest.param(DELETE_APPOINTMENT, {"id": APPOINTMENT}, id="billed-appointment"),
        pytest.param(
            UPDATE_PRESCRIPTION,
            {"id": FINISHED_PRESCRIPTION, "input": {"status": "ACTIVE"}},
            id="reactivating-a-finished-prescription",
        ),
    ],
)
async def test_change_that_would_break_a_record_is_conflict(api, ids, query, variables):
    await assert_refused(api, ids, query, variables, "CONFLICT")
