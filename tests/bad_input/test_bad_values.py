"""Bad values in arguments and inputs (dates, money, enums, sizes, blanks, lists, unknown
fields, operator objects, pages, booking times): a typed error, and nothing changed.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import bson
import pytest

from tests.bad_input.support import (
    APPOINTMENTS_BETWEEN,
    BOOKED_SLOT,
    CANCEL_APPOINTMENT,
    CASE,
    CREATE_APPOINTMENT,
    CREATE_BILL,
    CREATE_DOCTOR,
    CREATE_PATIENT,
    CREATE_PRESCRIPTION,
    DAY_AFTER_STORED_END,
    DAY_BEFORE_STORED_START,
    DOCTOR,
    LONG,
    LOOKUP,
    NESTED_APPOINTMENTS_FROM,
    NOSQL_OPERATOR,
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
    assert_refused,
    assert_typed_error,
    assert_unchanged,
    bill_input,
    case,
    cases_for_each,
    doctor_input,
    dosage,
    list_of,
    patient_input,
    prescription_input,
    resolve,
    stored_state,
    window,
)

# --- Dates and date-times -----------------------------------------------------------------

BAD_DATES = ["2026-13-45", "yesterday", "2025-02-29", "1980-12-10T00:00:00Z", 20260101]
BAD_DATE_TIMES = [
    "2026-13-45T10:00:00Z",
    "yesterday",
    "2030-01-07T09:00:00",  # no UTC offset: which time zone?
    "2030-01-07",  # a date: no time, no offset
    "9999-12-31T23:00:00-23:00",  # past year 9999 once in UTC
    1893924000,
]


def date_cases(value: Any) -> list:
    return [
        case("birthDate", CREATE_PATIENT, input=patient_input(birthDate=value)),
        case("startDate", CREATE_PRESCRIPTION, input=prescription_input(startDate=value)),
        case("endDate", CREATE_PRESCRIPTION, input=prescription_input(endDate=value)),
        case("update-endDate", UPDATE_PRESCRIPTION, id=PRESCRIPTION, input={"endDate": value}),
        case("availableOn", list_of("doctors", availableOn="Date"), availableOn=value),
    ]


def date_time_cases(value: Any) -> list:
    return [
        case("start", CREATE_APPOINTMENT, input=appointment_input(start=value)),
        case("reschedule", RESCHEDULE_APPOINTMENT, id=SCHEDULED, start=value),
        case("startsFrom", APPOINTMENTS_BETWEEN, startsFrom=value),
        case("startsBefore", APPOINTMENTS_BETWEEN, startsBefore=value),
        case("nested-startsFrom", NESTED_APPOINTMENTS_FROM, startsFrom=value),
    ]


@pytest.mark.parametrize(CASE, cases_for_each(BAD_DATES, date_cases))
async def test_malformed_date_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(CASE, cases_for_each(BAD_DATE_TIMES, date_time_cases))
async def test_malformed_date_time_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(
    "query",
    [
        '{ appointments(startsFrom: "2030-01-07T09:00:00") { totalCount } }',
        '{ appointments(startsBefore: "yesterday") { totalCount } }',
        '{ doctors(availableOn: "2026-13-45") { totalCount } }',
    ],
)
async def test_malformed_date_literal_in_the_query_is_bad_user_input(api, ids, query):
    await assert_refused(api, ids, query, {}, "BAD_USER_INPUT")


IMPLAUSIBLE_DATES = [
    case("birthDate-in-the-future", CREATE_PATIENT, "birthDate",
         input=patient_input(birthDate="2999-01-01")),
    case("birthDate-before-1900", CREATE_PATIENT, "birthDate",
         input=patient_input(birthDate="1850-01-01")),
    case("update-birthDate-in-the-future", UPDATE_PATIENT, "birthDate",
         id=PATIENT, input={"birthDate": "2999-01-01"}),
    case("time-range-ending-before-it-starts", APPOINTMENTS_BETWEEN, "startsBefore",
         startsFrom="2026-03-02T00:00:00Z", startsBefore="2026-03-01T00:00:00Z"),
]  # fmt: skip


@pytest.mark.parametrize(CASE, IMPLAUSIBLE_DATES)
async def test_implausible_date_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


PRESCRIPTION_ENDING_BEFORE_IT_STARTS = [
    case("create", CREATE_PRESCRIPTION, "endDate",
         input=prescription_input(startDate="2030-02-01", endDate="2030-01-31")),
    case("update-endDate-before-stored-startDate", UPDATE_PRESCRIPTION, "endDate",
         id=PRESCRIPTION, input={"endDate": DAY_BEFORE_STORED_START}),
    case("update-startDate-after-stored-endDate", UPDATE_PRESCRIPTION, "endDate",
         id=PRESCRIPTION, input={"startDate": DAY_AFTER_STORED_END}),
    case("update-both", UPDATE_PRESCRIPTION, "endDate",
         id=PRESCRIPTION, input={"startDate": "2030-02-01", "endDate": "2030-01-31"}),
]  # fmt: skip


@pytest.mark.parametrize(CASE, PRESCRIPTION_ENDING_BEFORE_IT_STARTS)
async def test_prescription_ending_before_it_starts_is_bad_user_input(
    api, ids, query, variables, field
):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


# --- Money --------------------------------------------------------------------------------

BAD_AMOUNTS = [
    "-1",
    "-0.01",
    "NaN",
    "sNaN",
    "Infinity",
    "-Infinity",
    "12.345",
    "0.001",
    "1000000.01",  # over the maximum
    "1e400",
    "twelve",
    12.345,  # a JSON number, still three decimals
]


def amount_cases(amount: Any) -> list:
    return [
        case("createPrescription", CREATE_PRESCRIPTION, input=prescription_input(cost=amount)),
        case("updatePrescription", UPDATE_PRESCRIPTION, id=PRESCRIPTION, input={"cost": amount}),
        case("createBill", CREATE_BILL, input=bill_input(totalCost=amount)),
        case("updateBill", UPDATE_BILL, id=UNPAID_BILL, input={"totalCost": amount}),
    ]


@pytest.mark.parametrize(CASE, cases_for_each(BAD_AMOUNTS, amount_cases))
async def test_bad_amount_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


NON_FINITE_JSON_NUMBERS = [
    case("cost-NaN", CREATE_PRESCRIPTION, input=prescription_input(cost=float("nan"))),
    case("totalCost-Infinity", CREATE_BILL, input=bill_input(totalCost=float("inf"))),
    case("dose-NaN", CREATE_PRESCRIPTION, input=prescription_input(dosage=dosage(float("nan")))),
    case("dose-minus-Infinity", UPDATE_PRESCRIPTION,
         id=PRESCRIPTION, input={"dosage": dosage(float("-inf"))}),
]  # fmt: skip


@pytest.mark.parametrize(CASE, NON_FINITE_JSON_NUMBERS)
async def test_non_finite_json_number_is_refused(api, ids, query, variables, field):
    """NaN and Infinity as bare JSON tokens, as some clients send them."""
    before = await stored_state(api.services)
    body = {"query": query, "variables": resolve(variables, ids)}
    response = await api.http.post(
        "/graphql",
        content=json.dumps(body, allow_nan=True).encode(),
        headers={"content-type": "application/json"},
    )
    if response.status_code == 200:
        assert_typed_error(response.json(), "BAD_USER_INPUT")
    else:  # refusing the body outright is as good, as long as it is a client error
        assert 400 <= response.status_code < 500, response.text
    await assert_unchanged(api.services, before)


# --- Enums, sizes, blanks, lists and other checked fields ---------------------------------

UNKNOWN_ENUM_VALUES = [
    case("sex", CREATE_PATIENT, input=patient_input(sex="ROBOT")),
    case("sex-lowercase", CREATE_PATIENT, input=patient_input(sex="female")),
    case("specialty", CREATE_DOCTOR, input=doctor_input(specialty="WIZARDRY")),
    case("dayOfWeek", CREATE_DOCTOR, input=doctor_input(availability=[window(day="FUNDAY")])),
    case("dosage-unit", CREATE_PRESCRIPTION, input=prescription_input(dosage=dosage(unit="TSP"))),
    case("dosage-unit-lowercase", CREATE_PRESCRIPTION,
         input=prescription_input(dosage=dosage(unit="mg"))),
    case("update-dosage-unit", UPDATE_PRESCRIPTION,
         id=PRESCRIPTION, input={"dosage": dosage(unit="MILLIGRAM")}),
    case("frequency", CREATE_PRESCRIPTION, input=prescription_input(frequency="HOURLY")),
    case("prescription-status", UPDATE_PRESCRIPTION, id=PRESCRIPTION, input={"status": "PAUSED"}),
    case("appointments-status-filter", list_of("appointments", status="AppointmentStatus"),
         status="PENDING"),
    case("prescriptions-status-filter", list_of("prescriptions", status="PrescriptionStatus"),
         status="PAUSED"),
    case("doctors-specialty-filter", list_of("doctors", specialty="Specialty"),
         specialty="SURGERY"),
]  # fmt: skip


@pytest.mark.parametrize(CASE, UNKNOWN_ENUM_VALUES)
async def test_unknown_enum_value_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


OVERSIZED_STRINGS = [
    case("givenName", CREATE_PATIENT, "givenName", input=patient_input(givenName=LONG)),
    case("familyName", CREATE_PATIENT, "familyName", input=patient_input(familyName=LONG)),
    case("update-givenName", UPDATE_PATIENT, "givenName",
         id=PATIENT, input={"givenName": LONG}),
    case("condition", CREATE_PATIENT, "conditions",
         input=patient_input(conditions=["Asthma", LONG])),
    case("update-allergy", UPDATE_PATIENT, "allergies", id=PATIENT, input={"allergies": [LONG]}),
    case("address-line1", CREATE_PATIENT, "address.line1",
         input=patient_input(contact={"address": {"line1": LONG}})),
    case("email", CREATE_PATIENT, "email",
         input=patient_input(contact={"email": f"{LONG}@example.org"})),
    case("doctor-familyName", CREATE_DOCTOR, "familyName", input=doctor_input(familyName=LONG)),
    case("update-doctor-givenName", UPDATE_DOCTOR, "givenName",
         id=DOCTOR, input={"givenName": LONG}),
    case("appointment-reason", CREATE_APPOINTMENT, "reason", input=appointment_input(reason=LONG)),
    case("update-appointment-reason", UPDATE_APPOINTMENT, "reason",
         id=SCHEDULED, input={"reason": LONG}),
    case("cancellation-reason", CANCEL_APPOINTMENT, "reason", id=SCHEDULED, reason=LONG),
    case("drug", CREATE_PRESCRIPTION, "drug", input=prescription_input(drug=LONG)),
    case("update-drug", UPDATE_PRESCRIPTION, "drug", id=PRESCRIPTION, input={"drug": LONG}),
    case("disease", CREATE_BILL, "disease", input=bill_input(disease=LONG)),
    case("update-disease", UPDATE_BILL, "disease", id=UNPAID_BILL, input={"disease": LONG}),
    case("patient-search", list_of("patients", name="String"), "name", name=LONG),
    case("doctor-search", list_of("doctors", name="String"), "name", name=LONG),
]  # fmt: skip


@pytest.mark.parametrize(CASE, OVERSIZED_STRINGS)
async def test_oversized_string_is_bad_user_input(api, ids, query, variables, field):
    error = await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)
    assert "at most" in error["message"]


def blank_cases(blank: str) -> list:
    return [
        case("givenName", CREATE_PATIENT, "givenName", input=patient_input(givenName=blank)),
        case("familyName", CREATE_PATIENT, "familyName", input=patient_input(familyName=blank)),
        case("update-givenName", UPDATE_PATIENT, "givenName",
             id=PATIENT, input={"givenName": blank}),
        case("update-familyName", UPDATE_PATIENT, "familyName",
             id=PATIENT, input={"givenName": "Ada", "familyName": blank}),
        case("doctor-givenName", CREATE_DOCTOR, "givenName", input=doctor_input(givenName=blank)),
        case("update-doctor-familyName", UPDATE_DOCTOR, "familyName",
             id=DOCTOR, input={"familyName": blank}),
        case("condition", CREATE_PATIENT, "conditions",
             input=patient_input(conditions=["Asthma", blank])),
        case("drug", CREATE_PRESCRIPTION, "drug", input=prescription_input(drug=blank)),
        case("disease", CREATE_BILL, "disease", input=bill_input(disease=blank)),
        case("cancellation-reason", CANCEL_APPOINTMENT, "reason", id=SCHEDULED, reason=blank),
    ]  # fmt: skip


@pytest.mark.parametrize(CASE, cases_for_each(["", "   \t\n "], blank_cases))
async def test_empty_or_blank_required_text_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


def many(prefix: str, count: int = 51) -> list[str]:
    return [f"{prefix} {i}" for i in range(count)]


OUTSIDE_THE_RULES = [
    case("51-conditions", CREATE_PATIENT, "conditions",
         input=patient_input(conditions=many("Condition"))),
    case("update-51-conditions", UPDATE_PATIENT, "conditions",
         id=PATIENT, input={"conditions": many("Condition")}),
    case("51-allergies", CREATE_PATIENT, "allergies",
         input=patient_input(allergies=many("Allergy"))),
    case("update-givenName-to-null", UPDATE_PATIENT, "givenName",
         id=PATIENT, input={"givenName": None}),
    case("email", CREATE_PATIENT, "email", input=patient_input(contact={"email": "not-an-email"})),
    case("phone", CREATE_PATIENT, "phone", input=patient_input(contact={"phone": "call me"})),
    case("29-availability-windows", CREATE_DOCTOR, "availability",
         input=doctor_input(availability=[window()] * 29)),
    case("window-off-5-minute-boundary", CREATE_DOCTOR, "availability",
         input=doctor_input(availability=[window(start="09:03")])),
    case("window-ending-before-it-starts", CREATE_DOCTOR, "availability",
         input=doctor_input(availability=[window(start="17:00", end="09:00")])),
    case("overlapping-windows", UPDATE_DOCTOR, "availability",
         id=DOCTOR, input={"availability": [window(end="12:00"), window(start="11:00")]}),
    case("window-at-25-o-clock", CREATE_DOCTOR,
         input=doctor_input(availability=[window(start="25:00")])),
    case("dose-zero", CREATE_PRESCRIPTION, "dosage.value",
         input=prescription_input(dosage=dosage(0))),
    case("dose-negative", UPDATE_PRESCRIPTION, "dosage.value",
         id=PRESCRIPTION, input={"dosage": dosage(-5)}),
    case("dose-huge", CREATE_PRESCRIPTION, "dosage.value",
         input=prescription_input(dosage=dosage(1e9))),
]  # fmt: skip


@pytest.mark.parametrize(CASE, OUTSIDE_THE_RULES)
async def test_value_outside_its_rules_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


# --- Unknown input fields and operator objects --------------------------------------------

UNEXPECTED_SHAPES = [
    case("role-in-patient", CREATE_PATIENT, input=patient_input(role="ADMIN")),
    case("userId-in-patient", CREATE_PATIENT, input=patient_input(userId="u1")),
    case("internal-field-in-update", UPDATE_PATIENT,
         id=PATIENT, input={"searchTerms": ["zzz"]}),
    case("paidAt-in-bill", CREATE_BILL, input=bill_input(paidAt="2026-01-01T00:00:00Z")),
    case("operator-as-givenName", CREATE_PATIENT, input=patient_input(givenName=NOSQL_OPERATOR)),
    case("operator-in-conditions", CREATE_PATIENT,
         input=patient_input(conditions=[NOSQL_OPERATOR])),
    case("operator-as-id", LOOKUP["patient"], id=NOSQL_OPERATOR),
    case("operator-as-search", list_of("patients", name="String"), name={"$regex": ".*"}),
    case("operator-as-filter-id", list_of("bills", patientId="ID"), patientId=NOSQL_OPERATOR),
    case("operator-as-disease", CREATE_BILL, input=bill_input(disease={"$gt": ""})),
    case("string-as-contact", CREATE_PATIENT, input=patient_input(contact="ada@example.org")),
    case("string-as-boolean", UPDATE_BILL, id=UNPAID_BILL, input={"paid": "yes"}),
    case("string-as-int", CREATE_APPOINTMENT, input=appointment_input(durationMinutes="30")),
]  # fmt: skip


@pytest.mark.parametrize(CASE, UNEXPECTED_SHAPES)
async def test_unknown_field_or_wrong_shape_is_bad_user_input(api, ids, query, variables, field):
    await assert_refused(api, ids, query, variables, "BAD_USER_INPUT", field)


async def test_unknown_field_in_a_query_literal_is_bad_user_input(api, ids):
    query = (
        'mutation { createPatient(input: {givenName: "Ada", familyName: "Lovelace",'
        ' birthDate: "1980-12-10", sex: FEMALE, role: "ADMIN"}) { id } }'
    )
    await assert_refused(api, ids, query, {}, "BAD_USER_INPUT")


# --- Pages --------------------------------------------------------------------------------

TOP_LEVEL_LISTS = ["appointments", "patients", "doctors", "prescriptions", "bills"]
NESTED_LISTS = ["patient.appointments", "patient.prescriptions", "patient.bills"]
NESTED_LISTS += ["doctor.appointments"]


def list_query(name: str) -> str:
    """A page of `name` (`parent.child` for a nested list) taking $first and $after."""
    page = "(first: $first, after: $after) { totalCount }"
    if "." in name:
        parent, child = name.split(".")
        selection = f"{parent}s {{ nodes {{ {child}{page} }} }}"
    else:
        selection = f"{name}{page}"
    return f"query($first: Int, $after: String) {{ {selection} }}"


def forged_cursor(document: dict[str, Any]) -> str:
    """A cursor in the server's own encoding that the server never issued."""
    return base64.urlsafe_b64encode(bson.encode(document)).decode().rstrip("=")


@pytest.mark.parametrize("first", [501, -1, 2**31])
@pytest.mark.parametrize("name", TOP_LEVEL_LISTS + NESTED_LISTS)
async def test_page_size_out_of_range_is_bad_user_input(api, ids, name, first):
    await assert_refused(api, ids, list_query(name), {"first": first}, "BAD_USER_INPUT")


GARBAGE_CURSORS = [
    "garbage",
    "!!!!",
    "bm90LWJzb24",  # base64 of "not-bson"
    "a" * 5000,
    forged_cursor({"k": [1]}),  # one sort value where every list has two
    forged_cursor({"k": "not-a-list"}),
    forged_cursor({"x": [1, 2]}),
]


@pytest.mark.parametrize("name", TOP_LEVEL_LISTS + NESTED_LISTS)
async def test_garbage_cursor_is_bad_user_input_on_every_list(api, ids, name):
    await assert_refused(
        api, ids, list_query(name), {"after": "garbage"}, "BAD_USER_INPUT", "after"
    )


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS, ids=lambda cursor: cursor[:20])
@pytest.mark.parametrize("name", ["appointments", "bills"])  # MongoDB and SQL pages
async def test_undecodable_cursor_is_bad_user_input(api, ids, name, cursor):
    await assert_refused(api, ids, list_query(name), {"after": cursor}, "BAD_USER_INPUT", "after")


@pytest.mark.parametrize("name", TOP_LEVEL_LISTS)
async def test_forged_cursor_of_the_right_length_is_bad_user_input(api, ids, name):
    cursor = forged_cursor({"k": [1, 2]})
    await assert_refused(api, ids, list_query(name), {"after": cursor}, "BAD_USER_INPUT", "after")


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (source, target)
        for source in TOP_LEVEL_LISTS
        for target in TOP_LEVEL_LISTS
        if source != target
    ],
)
async def test_cursor_from_another_list_is_bad_user_input(api, ids, source, target):
    data = await api.data(f"{{ {source}(first: 1) {{ pageInfo {{ endCursor }} }} }}")
    cursor = data[source]["pageInfo"]["endCursor"]
    await assert_refused(api, ids, list_query(target), {"after": cursor}, "BAD_USER_INPUT", "after")


# --- Booking rules ------------------------------------------------------------------------

BAD_BOOKING_TIMES = [
    pytest.param({"start": "2020-01-06T09:00:00Z"}, "start", id="in-the-past"),
    pytest.param({"start": "2030-01-07T10:02:00Z"}, "start", id="off-5-minute-boundary"),
    pytest.param({"start": "2030-01-07T10:00:30Z"}, "start", id="with-seconds"),
    pytest.param({"start": "2030-01-07T10:00:00.001Z"}, "start", id="with-milliseconds"),
    pytest.param({"durationMinutes": 0}, "durationMinutes", id="duration-0"),
    pytest.param({"durationMinutes": -30}, "durationMinutes", id="duration-negative"),
    pytest.param({"durationMinutes": 7}, "durationMinutes", id="duration-7"),
    pytest.param({"durationMinutes": 31}, "durationMinutes", id="duration-31"),
    pytest.param({"durationMinutes": 485}, "durationMinutes", id="duration-485"),
    pytest.param({"durationMinutes": 600}, "durationMinutes", id="duration-600"),
]


@pytest.mark.parametrize(("changes", "field"), BAD_BOOKING_TIMES)
async def test_booking_with_bad_time_is_bad_user_input(api, ids, changes, field):
    variables = {"input": appointment_input(**changes)}
    await assert_refused(api, ids, CREATE_APPOINTMENT, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(("changes", "field"), BAD_BOOKING_TIMES)
async def test_rescheduling_to_bad_time_is_bad_user_input(api, ids, changes, field):
    variables = {"id": SCHEDULED, "start": BOOKED_SLOT, **changes}
    await assert_refused(api, ids, RESCHEDULE_APPOINTMENT, variables, "BAD_USER_INPUT", field)


def test_name_search_never_sends_a_control_character_to_mongodb():
    """Real MongoDB refuses a NUL inside $regex; the embedded server doesn't, so this is
    checked on the filter itself."""
    from datasources.search import name_filter

    filter = name_filter("jo\x00hn\x1fsmi\tth")
    clauses = [{"searchTerms": filter["searchTerms"]}, *filter["$and"]]
    patterns = [c["searchTerms"]["$regex"] for c in clauses]
    assert patterns == ["^jo", "^hn", "^smi", "^th"]
    assert name_filter("\x00\x01") == {}
