"""What the bad-input tests share: real demo ids and references to them in the case
tables, the operations, valid inputs each bad case changes in one thing, and the
assertion that a refused request got a typed error and changed nothing.

Cases are rows of tables: `case(id, query, field, **variables)`, where `field` is the
`extensions.field` the error must name (None when the GraphQL layer refuses the value
before any resolver runs) and variables may hold `Ref`s to real demo ids.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from runtime.services import Services
from tests.support import Api, GraphQLClient

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


# --- Assertions ---------------------------------------------------------------------------


async def stored_state(services: Services) -> dict[str, list[object]]:
    """Every document of every collection, and every bill row."""
    state: dict[str, list[object]] = {}
    for name in sorted(await services.db.list_collection_names()):
        documents: list[dict[str, Any]] = await services.db[name].find({}).to_list()
        # Sorted here: a sort on the embedded server costs more than the whole scan.
        documents.sort(key=lambda d: d["_id"])
        state[name] = list(documents)
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
    api: Api, ids: Ids, query: str, variables: dict[str, Any], code: str, field: str | None = None
) -> dict:
    before = await stored_state(api.services)
    body = await api.post(query, resolve(variables, ids))
    error = assert_typed_error(body, code, field)
    await assert_unchanged(api.services, before)
    return error
