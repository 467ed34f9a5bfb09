"""Bad input gets a clear, typed error (`extensions.code`, never a 500 or a stack trace)
and changes nothing: after every refused request the stored data is compared, document
by document and row by row, with what was stored before it.

The cases run against one app per module, loaded with the same small demo data set as
the `demo` fixture (plus one booked future appointment). Sharing it is sound because no
case may change anything, which each case checks; a fresh app per case would cost about
half a second each. The control test at the end, which does write, has its own app.

Cases are rows of tables: `case(id, query, field, **variables)`, where `field` is the
`extensions.field` the error must name (None when the GraphQL layer refuses the value
before any resolver runs) and variables may hold `Ref`s to real demo ids.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import bson
import httpx
import pytest
import sqlalchemy as sa

from app import create_app
from auth.roles import Role
from demo.generator import load_demo_data
from runtime.services import Services
from tests.conftest import DEMO_ANCHOR
from tests.support import GraphQLClient, issue_token, settings_for_test

MALFORMED_ID = "nope"
UNKNOWN_ID = "0123456789abcdef01234567"  # well-formed, matches nothing
UNKNOWN_BILL_ID = "999999999"
# Mondays in the future; every demo doctor works Mondays from 09:00 at the latest.
BOOKED_SLOT = "2030-01-07T09:00:00Z"  # taken by the appointment the fixture books
FREE_SLOT = "2030-01-07T10:00:00Z"
LONG = "x" * 10_000
NOSQL_OPERATOR = {"$ne": None}


# --- Real ids, and references to them in the tables ---------------------------------------


@dataclass(frozen=True)
class Ids:
    patient: str  # has appointments, prescriptions and bills
    other_patient: str
    doctor: str  # has appointments; works Mondays 09:00-11:00
    appointment: str  # completed, billed, belongs to `patient`
    scheduled: str  # booked by the fixture at BOOKED_SLOT
    prescription: str  # has an end date
    prescription_start: date
    prescription_end: date
    finished_prescription: str  # COMPLETED or STOPPED
    paid_bill: str
    unpaid_bill: str


@dataclass(frozen=True)
class Ref:
    """Stands for an `Ids` attribute (optionally transformed) until the test runs."""

    name: str
    then: Callable[[Any], Any] = str


PATIENT, OTHER_PATIENT, DOCTOR = Ref("patient"), Ref("other_patient"), Ref("doctor")
APPOINTMENT, SCHEDULED = Ref("appointment"), Ref("scheduled")
PRESCRIPTION, FINISHED_PRESCRIPTION = Ref("prescription"), Ref("finished_prescription")
PAID_BILL, UNPAID_BILL = Ref("paid_bill"), Ref("unpaid_bill")
DAY_BEFORE_STORED_START = Ref("prescription_start", lambda d: str(d - timedelta(days=1)))
DAY_AFTER_STORED_END = Ref("prescription_end", lambda d: str(d + timedelta(days=1)))


def resolve(value: Any, ids: Ids) -> Any:
    if isinstance(value, Ref):
        return value.then(getattr(ids, value.name))
    if isinstance(value, dict):
        return {key: resolve(item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, ids) for item in value]
    return value


def case(case_id: str, query: str, field: str | None = None, **variables: Any):
    return pytest.param(query, variables, field, id=case_id)


CASE = ("query", "variables", "field")


def cases_for_each(values: list, make_cases: Callable[[Any], list]) -> list:
    """The cases `make_cases(value)` for every value, ids suffixed with the value."""
    return [
        pytest.param(*row.values, id=f"{row.id}={value!r}")
        for value in values
        for row in make_cases(value)
    ]


# --- Operations -------------------------------------------------------------------------


def operation(kind: str, field: str, selection: str = "", **params: str) -> str:
    """`operation("query", "patient", "{ id }", id="ID!")` ->
    `query($id: ID!) { patient(id: $id) { id } }`."""
    declared = ", ".join(f"${name}: {type_}" for name, type_ in params.items())
    arguments = ", ".join(f"{name}: ${name}" for name in params)
    return f"{kind}({declared}) {{ {field}({arguments}) {selection} }}"


def mutation(field: str, selection: str = "", **params: str) -> str:
    return operation("mutation", field, selection, **params)


def list_of(field: str, **params: str) -> str:
    return operation("query", field, "{ totalCount }", **params)


LOOKUP = {
    entity: operation("query", entity, "{ id }", id="ID!")
    for entity in ("patient", "doctor", "appointment", "prescription", "bill")
}
CREATE_PATIENT = mutation("createPatient", "{ id }", input="CreatePatientInput!")
UPDATE_PATIENT = mutation("updatePatient", "{ id }", id="ID!", input="UpdatePatientInput!")
DELETE_PATIENT = mutation("deletePatient", id="ID!")
CREATE_DOCTOR = mutation("createDoctor", "{ id }", input="CreateDoctorInput!")
UPDATE_DOCTOR = mutation("updateDoctor", "{ id }", id="ID!", input="UpdateDoctorInput!")
DELETE_DOCTOR = mutation("deleteDoctor", id="ID!")
CREATE_APPOINTMENT = mutation(
    "createAppointment", "{ __typename ... on Appointment { id } }", input="CreateAppointmentInput!"
)
UPDATE_APPOINTMENT = mutation(
    "updateAppointment", "{ id }", id="ID!", input="UpdateAppointmentInput!"
)
RESCHEDULE_APPOINTMENT = mutation(
    "rescheduleAppointment", "{ __typename }", id="ID!", start="DateTime!", durationMinutes="Int"
)
CANCEL_APPOINTMENT = mutation("cancelAppointment", "{ __typename }", id="ID!", reason="String!")
COMPLETE_APPOINTMENT = mutation("completeAppointment", "{ __typename }", id="ID!")
DELETE_APPOINTMENT = mutation("deleteAppointment", id="ID!")
CREATE_PRESCRIPTION = mutation("createPrescription", "{ id }", input="CreatePrescriptionInput!")
UPDATE_PRESCRIPTION = mutation(
    "updatePrescription", "{ id }", id="ID!", input="UpdatePrescriptionInput!"
)
DELETE_PRESCRIPTION = mutation("deletePrescription", id="ID!")
CREATE_BILL = mutation("createBill", "{ id }", input="CreateBillInput!")
UPDATE_BILL = mutation("updateBill", "{ id }", id="ID!", input="UpdateBillInput!")
DELETE_BILL = mutation("deleteBill", id="ID!")

APPOINTMENTS_BETWEEN = list_of("appointments", startsFrom="DateTime", startsBefore="DateTime")
NESTED_APPOINTMENTS_FROM = (
    "query($startsFrom: DateTime) { patients(first: 1) { nodes {"
    " appointments(startsFrom: $startsFrom) { totalCount } } } }"
)


# --- Valid inputs: each bad case changes one thing in one of these -------------------------


def patient_input(**changes: Any) -> dict[str, Any]:
    return {
        "givenName": "Ada",
        "familyName": "Lovelace",
        "birthDate": "1980-12-10",
        "sex": "FEMALE",
        "contact": {"email": "ada@example.org", "phone": "+44 20 7946 0000"},
        "conditions": ["Asthma"],
        **changes,
    }


def window(day: str = "MONDAY", start: str = "09:00", end: str = "17:00") -> dict[str, str]:
    return {"dayOfWeek": day, "startTime": start, "endTime": end}


def doctor_input(**changes: Any) -> dict[str, Any]:
    return {
        "givenName": "Gregory",
        "familyName": "House",
        "specialty": "NEUROLOGY",
        "availability": [window()],
        **changes,
    }


def appointment_input(**changes: Any) -> dict[str, Any]:
    return {
        "patientId": PATIENT,
        "doctorId": DOCTOR,
        "start": FREE_SLOT,
        "durationMinutes": 30,
        "reason": "Check-up",
        **changes,
    }


def dosage(value: Any = 200, unit: str = "MG") -> dict[str, Any]:
    return {"value": value, "unit": unit}


def prescription_input(**changes: Any) -> dict[str, Any]:
    return {
        "patientId": PATIENT,
        "doctorId": DOCTOR,
        "drug": "Ibuprofen",
        "dosage": dosage(),
        "frequency": "TWICE_DAILY",
        "startDate": "2030-01-01",
        "endDate": "2030-01-31",
        "cost": "12.50",
        **changes,
    }


def bill_input(**changes: Any) -> dict[str, Any]:
    return {"patientId": PATIENT, "disease": "Influenza", "totalCost": "80.00", **changes}


# --- The shared app ----------------------------------------------------------------------


@dataclass
class Api:
    client: GraphQLClient
    http: httpx.AsyncClient
    services: Services
    ids: Ids


async def book(client: GraphQLClient, ids: Ids, start: str) -> str:
    variables = {"input": resolve(appointment_input(start=start), ids)}
    booked = (await client.data(CREATE_APPOINTMENT, variables))["createAppointment"]
    assert booked["__typename"] == "Appointment", booked
    return booked["id"]


async def discover_ids(client: GraphQLClient) -> Ids:
    """Real ids from the demo data, found through the API; books one future appointment."""
    data = await client.data(
        """{
          appointments(first: 1, status: COMPLETED) {
            nodes { id patient { id } doctor { id } bill { id } } }
          prescriptions(first: 500) { nodes { id startDate endDate status } }
          paid: bills(first: 1, paid: true) { nodes { id } }
          unpaid: bills(first: 1, paid: false) { nodes { id } }
          patients(first: 500) { nodes { id } }
        }"""
    )
    appointment = data["appointments"]["nodes"][0]
    assert appointment["bill"] is not None, "every completed demo appointment is billed"
    patient = appointment["patient"]["id"]
    prescriptions = data["prescriptions"]["nodes"]
    ended = next(p for p in prescriptions if p["endDate"] is not None)
    ids = Ids(
        patient=patient,
        other_patient=next(p["id"] for p in data["patients"]["nodes"] if p["id"] != patient),
        doctor=appointment["doctor"]["id"],
        appointment=appointment["id"],
        scheduled="",
        prescription=ended["id"],
        prescription_start=date.fromisoformat(ended["startDate"]),
        prescription_end=date.fromisoformat(ended["endDate"]),
        finished_prescription=next(p["id"] for p in prescriptions if p["status"] != "ACTIVE"),
        paid_bill=data["paid"]["nodes"][0]["id"],
        unpaid_bill=data["unpaid"]["nodes"][0]["id"],
    )
    return replace(ids, scheduled=await book(client, ids, BOOKED_SLOT))


@pytest.fixture(scope="module")
async def api(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    data_dir = tmp_path_factory.mktemp("bad_input")
    settings = settings_for_test(mongo_uri, data_dir)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        services = application.state.services
        await load_demo_data(services, seed=7, size="small", anchor=DEMO_ANCHOR, progress=False)
        # A 500 must come back as a response the test can assert on, not as an exception.
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        signed_in = {"Authorization": f"Bearer {await issue_token(services, Role.ADMIN)}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=signed_in
        ) as http:
            client = GraphQLClient(http)
            yield Api(client, http, services, await discover_ids(client))
        await services.mongo_client.drop_database(settings.mongodb_database)


# --- Assertions ---------------------------------------------------------------------------


async def stored_state(services: Services) -> dict[str, list]:
    """Every document of every collection, and every bill row."""
    state = {
        # Sorted here: a sort on the embedded server costs more than the whole scan.
        name: sorted(await services.db[name].find({}).to_list(), key=lambda d: d["_id"])
        for name in sorted(await services.db.list_collection_names())
    }
    async with services.engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT * FROM bills ORDER BY id"))
        state["bills"] = [tuple(row) for row in rows]
    return state


# A refused attempt on a PHI record is itself audited (tests/test_audit.py): the audit
# trail growing is the point, not a change to the data.
AUDIT_TRAIL = {"audit_log", "audit_head"}


async def assert_unchanged(services: Services, before: dict[str, list]) -> None:
    after = await stored_state(services)
    changed = [name for name in before if name not in AUDIT_TRAIL and before[name] != after[name]]
    assert not changed, f"the refused request changed stored {changed}"


def assert_typed_error(body: dict, code: str, field: str | None = None) -> dict:
    errors = body.get("errors")
    assert errors, f"expected a {code} error, got {body}"
    error = errors[0]
    extensions = error.get("extensions") or {}
    assert extensions.get("code") == code, f"expected {code}, got {errors}"
    if field is not None:
        assert extensions.get("field") == field, error
    text = json.dumps(errors)
    for leak in ("Traceback", 'File "', "Internal server error", "stacktrace"):
        assert leak not in text, f"error leaks internals: {errors}"
    return error


async def assert_refused(
    api: Api, query: str, variables: dict[str, Any], code: str, field: str | None = None
) -> dict:
    before = await stored_state(api.services)
    body = await api.client.post(query, resolve(variables, api.ids))
    error = assert_typed_error(body, code, field)
    await assert_unchanged(api.services, before)
    return error


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
async def test_lookup_with_malformed_id_is_bad_user_input(api, entity, bad_id):
    await assert_refused(api, LOOKUP[entity], {"id": bad_id}, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize("bad_id", MALFORMED_BILL_IDS)
async def test_bill_lookup_with_malformed_id_is_bad_user_input(api, bad_id):
    await assert_refused(api, LOOKUP["bill"], {"id": bad_id}, "BAD_USER_INPUT", field="id")


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
async def test_lookup_of_unknown_id_is_not_found(api, entity, unknown_id):
    error = await assert_refused(api, LOOKUP[entity], {"id": unknown_id}, "NOT_FOUND")
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
async def test_mutation_with_malformed_id_is_bad_user_input(api, query, variables, field):
    variables = {**variables, "id": MALFORMED_ID}
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize(CASE, ID_MUTATIONS)
async def test_mutation_with_unknown_id_is_not_found(api, query, variables, field):
    await assert_refused(api, query, {**variables, "id": UNKNOWN_ID}, "NOT_FOUND")


@pytest.mark.parametrize("bad_id", [MALFORMED_ID, "-1", "²", UNKNOWN_ID])
@pytest.mark.parametrize(CASE, BILL_ID_MUTATIONS)
async def test_bill_mutation_with_malformed_id_is_bad_user_input(
    api, query, variables, field, bad_id
):
    variables = {**variables, "id": bad_id}
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field="id")


@pytest.mark.parametrize(CASE, BILL_ID_MUTATIONS)
async def test_bill_mutation_with_unknown_id_is_not_found(api, query, variables, field):
    await assert_refused(api, query, {**variables, "id": UNKNOWN_BILL_ID}, "NOT_FOUND")


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
async def test_create_with_malformed_reference_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(CASE, reference_cases(UNKNOWN_ID))
async def test_create_with_unknown_reference_is_not_found(api, query, variables, field):
    error = await assert_refused(api, query, variables, "NOT_FOUND")
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
async def test_list_filter_with_malformed_id_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


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
async def test_malformed_date_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(CASE, cases_for_each(BAD_DATE_TIMES, date_time_cases))
async def test_malformed_date_time_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(
    "query",
    [
        '{ appointments(startsFrom: "2030-01-07T09:00:00") { totalCount } }',
        '{ appointments(startsBefore: "yesterday") { totalCount } }',
        '{ doctors(availableOn: "2026-13-45") { totalCount } }',
    ],
)
async def test_malformed_date_literal_in_the_query_is_bad_user_input(api, query):
    await assert_refused(api, query, {}, "BAD_USER_INPUT")


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
async def test_implausible_date_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


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
async def test_prescription_ending_before_it_starts_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


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
async def test_bad_amount_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


NON_FINITE_JSON_NUMBERS = [
    case("cost-NaN", CREATE_PRESCRIPTION, input=prescription_input(cost=float("nan"))),
    case("totalCost-Infinity", CREATE_BILL, input=bill_input(totalCost=float("inf"))),
    case("dose-NaN", CREATE_PRESCRIPTION, input=prescription_input(dosage=dosage(float("nan")))),
    case("dose-minus-Infinity", UPDATE_PRESCRIPTION,
         id=PRESCRIPTION, input={"dosage": dosage(float("-inf"))}),
]  # fmt: skip


@pytest.mark.parametrize(CASE, NON_FINITE_JSON_NUMBERS)
async def test_non_finite_json_number_is_refused(api, query, variables, field):
    """NaN and Infinity as bare JSON tokens, as some clients send them."""
    before = await stored_state(api.services)
    body = {"query": query, "variables": resolve(variables, api.ids)}
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
async def test_unknown_enum_value_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


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
async def test_oversized_string_is_bad_user_input(api, query, variables, field):
    error = await assert_refused(api, query, variables, "BAD_USER_INPUT", field)
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
async def test_empty_or_blank_required_text_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


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
async def test_value_outside_its_rules_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


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
async def test_unknown_field_or_wrong_shape_is_bad_user_input(api, query, variables, field):
    await assert_refused(api, query, variables, "BAD_USER_INPUT", field)


async def test_unknown_field_in_a_query_literal_is_bad_user_input(api):
    query = (
        'mutation { createPatient(input: {givenName: "Ada", familyName: "Lovelace",'
        ' birthDate: "1980-12-10", sex: FEMALE, role: "ADMIN"}) { id } }'
    )
    await assert_refused(api, query, {}, "BAD_USER_INPUT")


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
async def test_page_size_out_of_range_is_bad_user_input(api, name, first):
    await assert_refused(api, list_query(name), {"first": first}, "BAD_USER_INPUT")


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
async def test_garbage_cursor_is_bad_user_input_on_every_list(api, name):
    await assert_refused(api, list_query(name), {"after": "garbage"}, "BAD_USER_INPUT", "after")


@pytest.mark.parametrize("cursor", GARBAGE_CURSORS, ids=lambda cursor: cursor[:20])
@pytest.mark.parametrize("name", ["appointments", "bills"])  # MongoDB and SQL pages
async def test_undecodable_cursor_is_bad_user_input(api, name, cursor):
    await assert_refused(api, list_query(name), {"after": cursor}, "BAD_USER_INPUT", "after")


@pytest.mark.parametrize("name", TOP_LEVEL_LISTS)
async def test_forged_cursor_of_the_right_length_is_bad_user_input(api, name):
    cursor = forged_cursor({"k": [1, 2]})
    await assert_refused(api, list_query(name), {"after": cursor}, "BAD_USER_INPUT", "after")


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (source, target)
        for source in TOP_LEVEL_LISTS
        for target in TOP_LEVEL_LISTS
        if source != target
    ],
)
async def test_cursor_from_another_list_is_bad_user_input(api, source, target):
    data = await api.client.data(f"{{ {source}(first: 1) {{ pageInfo {{ endCursor }} }} }}")
    cursor = data[source]["pageInfo"]["endCursor"]
    await assert_refused(api, list_query(target), {"after": cursor}, "BAD_USER_INPUT", "after")


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
async def test_booking_with_bad_time_is_bad_user_input(api, changes, field):
    variables = {"input": appointment_input(**changes)}
    await assert_refused(api, CREATE_APPOINTMENT, variables, "BAD_USER_INPUT", field)


@pytest.mark.parametrize(("changes", "field"), BAD_BOOKING_TIMES)
async def test_rescheduling_to_bad_time_is_bad_user_input(api, changes, field):
    variables = {"id": SCHEDULED, "start": BOOKED_SLOT, **changes}
    await assert_refused(api, RESCHEDULE_APPOINTMENT, variables, "BAD_USER_INPUT", field)


# --- Records that refer to each other -----------------------------------------------------


async def test_bill_for_an_appointment_of_another_patient_is_bad_user_input(api):
    variables = {"input": bill_input(patientId=OTHER_PATIENT, appointmentId=APPOINTMENT)}
    await assert_refused(api, CREATE_BILL, variables, "BAD_USER_INPUT", "appointmentId")


async def test_second_bill_for_the_same_appointment_is_conflict(api):
    variables = {"input": bill_input(appointmentId=APPOINTMENT)}
    await assert_refused(api, CREATE_BILL, variables, "CONFLICT")


async def test_deleting_a_patient_with_appointments_is_conflict_and_keeps_the_patient(api):
    patient = api.ids.patient
    await assert_refused(api, DELETE_PATIENT, {"id": patient}, "CONFLICT")
    data = await api.client.data(
        "query($id: ID!) { patient(id: $id) { id appointments { totalCount } } }", {"id": patient}
    )
    assert data["patient"]["id"] == patient
    assert data["patient"]["appointments"]["totalCount"] > 0


async def test_deleting_a_paid_bill_is_conflict_and_keeps_the_bill(api):
    await assert_refused(api, DELETE_BILL, {"id": PAID_BILL}, "CONFLICT")
    data = await api.client.data(
        "query($id: ID!) { bill(id: $id) { id paid } }", {"id": api.ids.paid_bill}
    )
    assert data["bill"] == {"id": api.ids.paid_bill, "paid": True}


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
async def test_change_that_would_break_a_record_is_conflict(api, query, variables):
    await assert_refused(api, query, variables, "CONFLICT")


# --- HTTP requests that are not GraphQL requests -------------------------------------------

JSON = {"content-type": "application/json"}
A_QUERY = "{ patients { totalCount } }"
NAMED = "query($name: String) { patients(name: $name) { totalCount } }"
DEEPLY_NESTED = b'{"query": "{ me { id } }", "variables": %s}' % (b"[" * 100_000 + b"]" * 100_000)


def ascii_json(query: str, **variables: Any) -> dict[str, Any]:
    """A JSON body with non-ASCII escaped (\\uXXXX): httpx's encoder cannot write these."""
    return {"content": json.dumps({"query": query, "variables": variables}), "headers": JSON}


HTTP_CASES = [
    pytest.param("POST", {"content": b"{bad json", "headers": JSON}, id="malformed-json"),
    pytest.param("POST", {"content": b'{"query": "{ x }"', "headers": JSON}, id="truncated-json"),
    pytest.param("POST", {"content": b"", "headers": JSON}, id="empty-json-body"),
    pytest.param("POST", {}, id="no-body"),
    pytest.param("POST", {"json": {}}, id="neither-query-nor-anything"),
    pytest.param("POST", {"json": {"query": None}}, id="null-query"),
    pytest.param("POST", {"json": {"query": 5}}, id="query-not-a-string"),
    pytest.param("POST", {"json": {"query": A_QUERY, "variables": "x"}}, id="variables-a-string"),
    pytest.param("POST", {"json": []}, id="empty-batch"),
    pytest.param("POST", {"json": 123}, id="json-number-body"),
    pytest.param("POST", {"json": A_QUERY}, id="json-string-body"),
    pytest.param("POST", {"content": b"null", "headers": JSON}, id="json-null-body"),
    pytest.param(
        "POST",
        {"content": A_QUERY.encode(), "headers": {"content-type": "text/plain"}},
        id="text-plain-body",
    ),
    pytest.param("GET", {"headers": {"accept": "application/json"}}, id="get-without-query"),
    pytest.param(
        "GET",
        {"params": {"query": A_QUERY, "variables": "{bad"}},
        id="get-with-malformed-variables",
    ),
    pytest.param(
        "POST",
        {"json": {"query": A_QUERY, "variables": {"pad": "x" * 300_000}}},
        id="body-over-the-size-limit",
    ),
    # Valid JSON to json.loads, but it used to fail later as a 500: nesting deep enough
    # for a RecursionError, and lone surrogates (no store or hash can encode them).
    pytest.param("POST", {"content": DEEPLY_NESTED, "headers": JSON}, id="json-nested-too-deep"),
    pytest.param(
        "POST",
        ascii_json(CREATE_DOCTOR, input=doctor_input(givenName="Gr\ud800")),
        id="lone-surrogate-in-variables",
    ),
    pytest.param(
        "GET",
        {"params": {"query": NAMED, "variables": json.dumps({"name": "\ud800"})}},
        id="get-with-lone-surrogate-in-variables",
    ),
]


@pytest.mark.parametrize(("method", "request_options"), HTTP_CASES)
async def test_request_that_is_not_graphql_is_a_client_error(api, method, request_options):
    before = await stored_state(api.services)
    response = await api.http.request(method, "/graphql", **request_options)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    await assert_unchanged(api.services, before)


async def test_mutation_over_get_is_refused(api):
    before = await stored_state(api.services)
    query = f'mutation {{ deleteBill(id: "{api.ids.unpaid_bill}") }}'
    response = await api.http.get(
        "/graphql", params={"query": query}, headers={"accept": "application/json"}
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    await assert_unchanged(api.services, before)


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


def test_name_search_never_sends_a_control_character_to_mongodb():
    """Real MongoDB refuses a NUL inside $regex; the embedded server doesn't, so this is
    checked on the filter itself."""
    from datasources.search import name_filter

    filter = name_filter("jo\x00hn\x1fsmi\tth")
    clauses = [{"searchTerms": filter["searchTerms"]}, *filter["$and"]]
    patterns = [c["searchTerms"]["$regex"] for c in clauses]
    assert patterns == ["^jo", "^hn", "^smi", "^th"]
    assert name_filter("\x00\x01") == {}
