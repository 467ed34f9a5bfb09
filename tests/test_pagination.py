"""Lists: walking pages with `first`/`after`, filters, nested connections, name search.

Every expectation is computed here from the raw stored documents (MongoDB) and rows
(SQL), in plain Python, never with the application's own filter or ordering code.

The tests only read, so they share one app per module, loaded with the same small demo
data set as the `demo` fixture plus a few records written through the API (future
appointments, so that SCHEDULED exists and two start at the same time; a doctor and a
patient with no appointments; bills created a few milliseconds apart).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from demo.generator import load_demo_data
from runtime.services import Services
from tests.conftest import DEMO_ANCHOR
from tests.support import Api, GraphQLClient, module_api

WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]
A_FUTURE_MONDAY = date(2030, 1, 7)
SPECIALTIES = [
    "CARDIOLOGY",
    "DERMATOLOGY",
    "ENDOCRINOLOGY",
    "GASTROENTEROLOGY",
    "GENERAL_PRACTICE",
    "NEUROLOGY",
    "ONCOLOGY",
    "ORTHOPEDICS",
    "PEDIATRICS",
    "PSYCHIATRY",
    "PULMONOLOGY",
    "RHEUMATOLOGY",
]


@dataclass
class Stored:
    """The raw stored records; bills are rows newest first, as SQL orders them."""

    patients: list[dict]
    doctors: list[dict]
    appointments: list[dict]
    prescriptions: list[dict]
    bills: list[dict]


async def read_stored(services: Services) -> Stored:
    async def documents(name: str) -> list[dict]:
        return await services.db[name].find({}).to_list()

    async with services.engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT id, patient_id, paid FROM bills ORDER BY created_at DESC, id DESC")
        )
        bills = [
            {"id": str(row.id), "patient_id": row.patient_id, "paid": bool(row.paid)}
            for row in rows
        ]
    return Stored(
        patients=await documents("patients"),
        doctors=await documents("doctors"),
        appointments=await documents("appointments"),
        prescriptions=await documents("prescriptions"),
        bills=bills,
    )


async def create(client: GraphQLClient, entity: str, fields: dict) -> dict:
    """`create(client, "Patient", {...})` calls createPatient and returns the new record."""
    data = await client.data(
        f"mutation($input: Create{entity}Input!) {{ create{entity}(input: $input)"
        f" {{ __typename ... on {entity} {{ id }} }} }}",
        {"input": fields},
    )
    created = data[f"create{entity}"]
    assert created["__typename"] == entity, created
    return created


async def add_records_through_the_api(client: GraphQLClient, stored: Stored) -> None:
    busy = max(
        stored.patients, key=lambda p: sum(a["patientId"] == p["_id"] for a in stored.appointments)
    )
    patient = str(busy["_id"])
    first, second = (str(d["_id"]) for d in stored.doctors[:2])
    for doctor, at in [(first, "09:00"), (first, "09:30"), (second, "09:00")]:
        await create(
            client,
            "Appointment",
            {"patientId": patient, "doctorId": doctor, "start": f"{A_FUTURE_MONDAY}T{at}:00Z"},
        )
    await create(
        client,
        "Doctor",
        {
            "givenName": "Idle",
            "familyName": "Sundays",
            "specialty": "ONCOLOGY",
            "availability": [{"dayOfWeek": "SUNDAY", "startTime": "10:00", "endTime": "12:00"}],
            "acceptingNewPatients": False,
        },
    )
    await create(
        client,
        "Patient",
        {"givenName": "Nobody", "familyName": "Yet", "birthDate": "2001-02-03", "sex": "UNKNOWN"},
    )
    for disease in ("Sprain", "Flu", "Checkup"):
        await create(
            client,
            "Bill",
            {"patientId": patient, "disease": disease, "totalCost": "10.00"},
        )


# --- The apps shared by the module -------------------------------------------------------


@pytest.fixture(scope="module")
async def api(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    # These tests read every parent with its nested page in one request, which the
    # default cost budget rightly refuses; the budget has tests of its own.
    data_dir = tmp_path_factory.mktemp("pagination")
    async with module_api(mongo_uri, data_dir, max_cost=10**6) as api:
        await load_demo_data(api.services, seed=7, size="small", anchor=DEMO_ANCHOR, progress=False)
        await add_records_through_the_api(api.client, await read_stored(api.services))
        yield api


@pytest.fixture(scope="module")
async def stored(api: Api) -> Stored:
    return await read_stored(api.services)


# --- Independent orderings and filters ----------------------------------------------------


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a name."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def ids(records: list[dict]) -> list[str]:
    return [str(record.get("_id", record.get("id"))) for record in records]


def appointments_in_order(documents: list[dict]) -> list[dict]:
    return sorted(documents, key=lambda a: (a["start"], a["_id"]))


def people_in_order(documents: list[dict]) -> list[dict]:
    return sorted(documents, key=lambda p: (fold(p["familyName"]), fold(p["givenName"]), p["_id"]))


def prescriptions_in_order(documents: list[dict]) -> list[dict]:
    return sorted(documents, key=lambda p: (p["startDate"], p["_id"]), reverse=True)


EXPECTED_ORDER: dict[str, Callable[[Stored], list[dict]]] = {
    "appointments": lambda s: appointments_in_order(s.appointments),
    "patients": lambda s: people_in_order(s.patients),
    "doctors": lambda s: people_in_order(s.doctors),
    "prescriptions": lambda s: prescriptions_in_order(s.prescriptions),
    "bills": lambda s: s.bills,  # already newest first
}


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def appointment_matches(document: dict, arguments: dict[str, Any]) -> bool:
    checks = {
        "doctorId": lambda v: str(document["doctorId"]) == v,
        "patientId": lambda v: str(document["patientId"]) == v,
        "status": lambda v: document["status"] == v,
        "startsFrom": lambda v: document["start"] >= when(v),
        "startsBefore": lambda v: document["start"] < when(v),
    }
    return all(checks[name](value) for name, value in arguments.items())


def doctor_matches(document: dict, arguments: dict[str, Any]) -> bool:
    days = {window["dayOfWeek"] for window in document["availability"]}
    checks = {
        "specialty": lambda v: document["specialty"] == v,
        "availableOn": lambda v: WEEKDAYS[date.fromisoformat(v).weekday()] in days,
        "acceptingNewPatients": lambda v: document["acceptingNewPatients"] == v,
    }
    return all(checks[name](value) for name, value in arguments.items())


def prescription_matches(document: dict, arguments: dict[str, Any]) -> bool:
    checks = {
        "patientId": lambda v: str(document["patientId"]) == v,
        "doctorId": lambda v: str(document["doctorId"]) == v,
        "status": lambda v: document["status"] == v,
    }
    return all(checks[name](value) for name, value in arguments.items())


def bill_matches(row: dict, arguments: dict[str, Any]) -> bool:
    checks = {
        "patientId": lambda v: row["patient_id"] == v,
        "paid": lambda v: row["paid"] == v,
    }
    return all(checks[name](value) for name, value in arguments.items())


def most(records: list[dict], key: str, among: list[dict]) -> str:
    """The id in `among` that most `records` refer to through `key`."""
    return str(max((r["_id"] for r in among), key=lambda id_: sum(r[key] == id_ for r in records)))


def without(records: list[dict], key: str, among: list[dict]) -> str:
    referenced = {r[key] for r in records}
    return str(next(r["_id"] for r in among if r["_id"] not in referenced))


def nth_start(stored: Stored, n: int, offset_hours: int = 0) -> str:
    start = appointments_in_order(stored.appointments)[n]["start"]
    return start.astimezone(timezone(timedelta(hours=offset_hours))).isoformat()


# --- Walking pages ------------------------------------------------------------------------


@dataclass
class Walk:
    ids: list[str]
    total_count: int
    pages: int


ARGUMENT_TYPES = {
    "appointments": {
        "doctorId": "ID",
        "patientId": "ID",
        "status": "AppointmentStatus",
        "startsFrom": "DateTime",
        "startsBefore": "DateTime",
    },
    "patients": {"name": "String"},
    "doctors": {"specialty": "Specialty", "availableOn": "Date", "acceptingNewPatients": "Boolean"},
    "prescriptions": {"patientId": "ID", "doctorId": "ID", "status": "PrescriptionStatus"},
    "bills": {"patientId": "ID", "paid": "Boolean"},
}
PAGE = "totalCount edges { cursor node { id } } pageInfo { hasNextPage endCursor }"


def assert_page_shape(connection: dict, first: int) -> None:
    edges, info = connection["edges"], connection["pageInfo"]
    assert len(edges) <= first
    assert info["endCursor"] == (edges[-1]["cursor"] if edges else None)
    if info["hasNextPage"]:
        assert len(edges) == first, "only the last page may be short"


MAX_PAGES = 200  # more than any walk here needs: stops a cursor that does not advance


async def walk(client: GraphQLClient, field: str, first: int, **arguments: Any) -> Walk:
    """Follow `endCursor` from the first page to the last."""
    types = ARGUMENT_TYPES[field]
    declared = "".join(f", ${name}: {types[name]}" for name in arguments)
    passed = "".join(f", {name}: ${name}" for name in arguments)
    query = (
        f"query($first: Int, $after: String{declared}) "
        f"{{ {field}(first: $first, after: $after{passed}) {{ {PAGE} }} }}"
    )
    seen: list[str] = []
    totals: set[int] = set()
    after, pages = None, 0
    while pages < MAX_PAGES:
        pages += 1
        variables = {**arguments, "first": first, "after": after}
        connection = (await client.data(query, variables))[field]
        assert_page_shape(connection, first)
        seen += [edge["node"]["id"] for edge in connection["edges"]]
        totals.add(connection["totalCount"])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    else:
        pytest.fail(f"still a next page after {MAX_PAGES} pages of {field}")
    assert len(totals) == 1, f"totalCount changed between pages: {totals}"
    return Walk(ids=seen, total_count=totals.pop(), pages=pages)


def assert_walked(walked: Walk, expected: list[str], first: int) -> None:
    duplicates = {id_ for id_ in walked.ids if walked.ids.count(id_) > 1}
    assert not duplicates, f"visited more than once: {duplicates}"
    assert set(walked.ids) == set(expected), (
        f"missing {set(expected) - set(walked.ids)}, unexpected {set(walked.ids) - set(expected)}"
    )
    assert walked.ids == expected, "every record once, but not in the expected order"
    assert walked.total_count == len(expected)
    assert walked.pages == max(1, -(-len(expected) // first))


@pytest.mark.parametrize(
    ("field", "first"),
    [
        ("appointments", 7),
        ("appointments", 100),
        ("appointments", 500),
        ("patients", 1),
        ("patients", 6),
        ("patients", 500),
        ("doctors", 1),
        ("doctors", 4),
        ("prescriptions", 4),
        ("prescriptions", 500),
        ("bills", 9),
        ("bills", 100),
    ],
)
async def test_walking_every_page_visits_each_record_once_in_order(api, stored, field, first):
    expected = ids(EXPECTED_ORDER[field](stored))
    assert_walked(await walk(api.client, field, first), expected, first)


@pytest.fixture
def server_time_zone(monkeypatch: pytest.MonkeyPatch):
    """Switch the process's local time zone (what naive datetimes are read in)."""

    def use(name: str) -> None:
        monkeypatch.setenv("TZ", name)
        time.tzset()

    yield use
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
async def test_bill_pages_do_not_depend_on_the_servers_local_time_zone(
    api, stored, server_time_zone, zone
):
    server_time_zone(zone)
    assert_walked(await walk(api.client, "bills", 9), ids(stored.bills), 9)


async def test_the_data_set_has_what_the_ordering_tests_need(api, stored):
    starts = [a["start"] for a in stored.appointments]
    assert len(starts) != len(set(starts)), "appointments sharing a start test the id tiebreak"
    assert {a["status"] for a in stored.appointments} == {"SCHEDULED", "COMPLETED", "CANCELLED"}
    folded = [fold(p["familyName"]) for p in stored.patients]
    assert len(folded) != len(set(folded)), "patients sharing a family name test the given name"
    assert any(fold(p["familyName"]) != p["familyName"].casefold() for p in stored.patients)


# --- Filters ------------------------------------------------------------------------------

Arguments = Callable[[Stored], dict[str, Any]]

APPOINTMENT_FILTERS: list = [
    pytest.param(
        lambda s: {"doctorId": most(s.appointments, "doctorId", s.doctors)}, id="busiest-doctor"
    ),
    pytest.param(
        lambda s: {"doctorId": without(s.appointments, "doctorId", s.doctors)}, id="idle-doctor"
    ),
    pytest.param(
        lambda s: {"patientId": most(s.appointments, "patientId", s.patients)},
        id="busiest-patient",
    ),
    pytest.param(
        lambda s: {"patientId": without(s.appointments, "patientId", s.patients)},
        id="patient-without-appointments",
    ),
    pytest.param(lambda s: {"status": "SCHEDULED"}, id="scheduled"),
    pytest.param(lambda s: {"status": "COMPLETED"}, id="completed"),
    pytest.param(lambda s: {"status": "CANCELLED"}, id="cancelled"),
    pytest.param(lambda s: {"startsFrom": nth_start(s, 100)}, id="from-inclusive"),
    pytest.param(lambda s: {"startsBefore": nth_start(s, 200)}, id="before-exclusive"),
    pytest.param(
        lambda s: {
            "startsFrom": nth_start(s, 50, offset_hours=2),
            "startsBefore": nth_start(s, 90),
        },
        id="between-with-offset",
    ),
    pytest.param(
        lambda s: {
            "doctorId": most(s.appointments, "doctorId", s.doctors),
            "status": "COMPLETED",
            "startsFrom": nth_start(s, 30),
            "startsBefore": nth_start(s, 250, offset_hours=-5),
        },
        id="doctor-status-and-range",
    ),
    pytest.param(
        lambda s: {
            "patientId": most(s.appointments, "patientId", s.patients),
            "startsFrom": f"{A_FUTURE_MONDAY}T00:00:00Z",
        },
        id="patient-upcoming",
    ),
]


@pytest.mark.parametrize("arguments", APPOINTMENT_FILTERS)
async def test_appointment_filters_return_exactly_the_matching_appointments(
    api, stored, arguments: Arguments
):
    chosen = arguments(stored)
    matching = [a for a in stored.appointments if appointment_matches(a, chosen)]
    expected = ids(appointments_in_order(matching))
    assert_walked(await walk(api.client, "appointments", 13, **chosen), expected, 13)


DOCTOR_FILTERS: list = [
    *(pytest.param(lambda s, v=v: {"specialty": v}, id=v) for v in SPECIALTIES),
    *(
        pytest.param(
            lambda s, d=d: {"availableOn": str(A_FUTURE_MONDAY + timedelta(days=d))},
            id=f"available-on-{WEEKDAYS[d].lower()}",
        )
        for d in range(7)
    ),
    pytest.param(lambda s: {"acceptingNewPatients": True}, id="accepting"),
    pytest.param(lambda s: {"acceptingNewPatients": False}, id="not-accepting"),
    pytest.param(
        lambda s: {"specialty": s.doctors[0]["specialty"], "availableOn": "2030-01-12"},
        id="specialty-and-saturday",
    ),
]


@pytest.mark.parametrize("arguments", DOCTOR_FILTERS)
async def test_doctor_filters_return_exactly_the_matching_doctors(
    api, stored, arguments: Arguments
):
    chosen = arguments(stored)
    matching = [d for d in stored.doctors if doctor_matches(d, chosen)]
    expected = ids(people_in_order(matching))
    assert_walked(await walk(api.client, "doctors", 2, **chosen), expected, 2)


async def test_available_on_a_weekday_only_some_doctors_work(api, stored):
    """Saturday splits the demo doctors; the filter must not return all or none."""
    saturday = "2030-01-12"
    working = [d for d in stored.doctors if doctor_matches(d, {"availableOn": saturday})]
    assert 0 < len(working) < len(stored.doctors)
    walked = await walk(api.client, "doctors", 100, availableOn=saturday)
    assert walked.ids == ids(people_in_order(working))


PRESCRIPTION_FILTERS: list = [
    pytest.param(
        lambda s: {"patientId": most(s.prescriptions, "patientId", s.patients)},
        id="busiest-patient",
    ),
    pytest.param(
        lambda s: {"patientId": without(s.prescriptions, "patientId", s.patients)},
        id="patient-without-prescriptions",
    ),
    pytest.param(lambda s: {"doctorId": most(s.prescriptions, "doctorId", s.doctors)}, id="doctor"),
    pytest.param(lambda s: {"status": "ACTIVE"}, id="active"),
    pytest.param(lambda s: {"status": "STOPPED"}, id="stopped"),
    pytest.param(lambda s: {"status": "COMPLETED"}, id="completed"),
    pytest.param(
        lambda s: {"patientId": most(s.prescriptions, "patientId", s.patients), "status": "ACTIVE"},
        id="patient-and-status",
    ),
]


@pytest.mark.parametrize("arguments", PRESCRIPTION_FILTERS)
async def test_prescription_filters_return_exactly_the_matching_prescriptions(
    api, stored, arguments: Arguments
):
    chosen = arguments(stored)
    matching = [p for p in stored.prescriptions if prescription_matches(p, chosen)]
    expected = ids(prescriptions_in_order(matching))
    assert_walked(await walk(api.client, "prescriptions", 3, **chosen), expected, 3)


def patient_with_most_bills(stored: Stored) -> str:
    patients = {b["patient_id"] for b in stored.bills}
    return max(patients, key=lambda p: sum(b["patient_id"] == p for b in stored.bills))


def without_bills(stored: Stored) -> str:
    billed = {b["patient_id"] for b in stored.bills}
    return next(str(p["_id"]) for p in stored.patients if str(p["_id"]) not in billed)


BILL_FILTERS: list = [
    pytest.param(lambda s: {"patientId": patient_with_most_bills(s)}, id="busiest-patient"),
    pytest.param(lambda s: {"patientId": without_bills(s)}, id="patient-without-bills"),
    pytest.param(lambda s: {"paid": True}, id="paid"),
    pytest.param(lambda s: {"paid": False}, id="unpaid"),
    pytest.param(
        lambda s: {"patientId": patient_with_most_bills(s), "paid": False}, id="patient-unpaid"
    ),
]


@pytest.mark.parametrize("arguments", BILL_FILTERS)
async def test_bill_filters_return_exactly_the_matching_bills(api, stored, arguments: Arguments):
    chosen = arguments(stored)
    expected = ids([b for b in stored.bills if bill_matches(b, chosen)])
    assert_walked(await walk(api.client, "bills", 11, **chosen), expected, 11)


# --- Default page size --------------------------------------------------------------------


@pytest.mark.parametrize("field", ["appointments", "patients", "doctors", "prescriptions", "bills"])
async def test_first_defaults_to_100(api, stored, field):
    data = await api.client.data(f"{{ {field} {{ {PAGE} }} }}")
    connection = data[field]
    expected = ids(EXPECTED_ORDER[field](stored))
    assert [edge["node"]["id"] for edge in connection["edges"]] == expected[:100]
    assert connection["pageInfo"]["hasNextPage"] == (len(expected) > 100)
    assert connection["totalCount"] == len(expected)


async def test_nested_first_defaults_to_100(api, stored):
    data = await api.client.data(
        "{ doctors(first: 500) { nodes { id"
        " appointments { edges { cursor } pageInfo { hasNextPage } } } } }"
    )
    for doctor in data["doctors"]["nodes"]:
        count = sum(str(a["doctorId"]) == doctor["id"] for a in stored.appointments)
        assert len(doctor["appointments"]["edges"]) == min(count, 100)
        assert doctor["appointments"]["pageInfo"]["hasNextPage"] == (count > 100)


# --- Nested connections -------------------------------------------------------------------


@dataclass(frozen=True)
class Nested:
    parent: str  # the top-level list and ...
    lookup: str  # ... the single lookup of one parent
    child: str
    expected: Callable[[Stored, str], list[str]]  # child ids of one parent, in order


NESTED = [
    pytest.param(
        Nested(
            "patients",
            "patient",
            "appointments",
            lambda s, p: ids(
                appointments_in_order([a for a in s.appointments if str(a["patientId"]) == p])
            ),
        ),
        2,
        id="patient-appointments",
    ),
    pytest.param(
        Nested(
            "doctors",
            "doctor",
            "appointments",
            lambda s, d: ids(
                appointments_in_order([a for a in s.appointments if str(a["doctorId"]) == d])
            ),
        ),
        25,
        id="doctor-appointments",
    ),
    pytest.param(
        Nested(
            "patients",
            "patient",
            "prescriptions",
            lambda s, p: ids(
                prescriptions_in_order([x for x in s.prescriptions if str(x["patientId"]) == p])
            ),
        ),
        1,
        id="patient-prescriptions",
    ),
    pytest.param(
        Nested(
            "patients",
            "patient",
            "bills",
            lambda s, p: ids([b for b in s.bills if b["patient_id"] == p]),
        ),
        2,
        id="patient-bills",
    ),
]


def child_ids(connection: dict) -> list[str]:
    return [edge["node"]["id"] for edge in connection["edges"]]


@pytest.mark.parametrize(("nested", "first"), NESTED)
async def test_nested_first_page_is_right_for_every_parent(api, stored, nested: Nested, first):
    data = await api.client.data(
        f"query($first: Int) {{ {nested.parent}(first: 500) {{ nodes {{ id "
        f"{nested.child}(first: $first) {{ {PAGE} }} }} }} }}",
        {"first": first},
    )
    parents = data[nested.parent]["nodes"]
    assert len(parents) == len(getattr(stored, nested.parent))
    for parent in parents:
        connection = parent[nested.child]
        expected = nested.expected(stored, parent["id"])
        assert_page_shape(connection, first)
        assert child_ids(connection) == expected[:first], parent["id"]
        assert connection["pageInfo"]["hasNextPage"] == (len(expected) > first)
        assert connection["totalCount"] == len(expected)


@pytest.mark.parametrize(("nested", "first"), NESTED)
async def test_nested_pages_continue_with_after(api, stored, nested: Nested, first):
    """Every parent's list, walked to the end; each round asks for the next page of all
    unfinished parents in one request, each with its own cursor."""
    data = await api.client.data(
        f"query($first: Int) {{ {nested.parent}(first: 500) {{ nodes {{ id "
        f"{nested.child}(first: $first) {{ {PAGE} }} }} }} }}",
        {"first": first},
    )
    walked = {p["id"]: child_ids(p[nested.child]) for p in data[nested.parent]["nodes"]}
    cursors = {
        p["id"]: p[nested.child]["pageInfo"]["endCursor"]
        for p in data[nested.parent]["nodes"]
        if p[nested.child]["pageInfo"]["hasNextPage"]
    }
    assert cursors, "some parent must have a second page"
    for _ in range(100):
        if not cursors:
            break
        parents = list(cursors)
        declared = "".join(f", $id{i}: ID!, $after{i}: String" for i in range(len(parents)))
        fields = " ".join(
            f"p{i}: {nested.lookup}(id: $id{i}) {{ {nested.child}(first: $first, after: $after{i})"
            f" {{ {PAGE} }} }}"
            for i in range(len(parents))
        )
        variables: dict[str, Any] = {"first": first}
        for i, parent in enumerate(parents):
            variables |= {f"id{i}": parent, f"after{i}": cursors[parent]}
        data = await api.client.data(f"query($first: Int{declared}) {{ {fields} }}", variables)
        cursors = {}
        for i, parent in enumerate(parents):
            connection = data[f"p{i}"][nested.child]
            assert_page_shape(connection, first)
            walked[parent] += child_ids(connection)
            if connection["pageInfo"]["hasNextPage"]:
                cursors[parent] = connection["pageInfo"]["endCursor"]
    for parent, children in walked.items():
        assert children == nested.expected(stored, parent), parent


# --- Name search --------------------------------------------------------------------------

PEOPLE = [
    ("José", "García"),
    ("Josefine", "Weber"),
    ("Anna", "Müller"),
    ("Hans", "Mueller"),
    ("Zoë", "Okafor"),
    ("Zoe", "Smith"),
    ("Ajose", "Brown"),
    ("Léa", "D'Arc (Senior)"),
    ("Mary-Jo", "O'Neil"),
]


@pytest.fixture(scope="module")
async def people(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with module_api(mongo_uri, tmp_path_factory.mktemp("names")) as api:
        for given, family in PEOPLE:
            await create(
                api.client,
                "Patient",
                {
                    "givenName": given,
                    "familyName": family,
                    "birthDate": "1990-05-05",
                    "sex": "OTHER",
                },
            )
        yield api


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("jos", {"José García", "Josefine Weber"}),
        ("JOSÉ", {"José García", "Josefine Weber"}),
        ("José García", {"José García"}),
        ("garcia jose", {"José García"}),
        ("MÜLL", {"Anna Müller"}),
        ("müller", {"Anna Müller"}),
        ("mue", {"Hans Mueller"}),
        ("zoe", {"Zoë Okafor", "Zoe Smith"}),
        ("ZOË", {"Zoë Okafor", "Zoe Smith"}),
        ("zoe oka", {"Zoë Okafor"}),
        ("lea d'arc", {"Léa D'Arc (Senior)"}),
        ("ose", set()),  # inside a word, not a prefix
        ("zoe weber", set()),  # every word must match
        ("(", {"Léa D'Arc (Senior)"}),
        ("(sen", {"Léa D'Arc (Senior)"}),
        (".*", set()),
        ("jos.*", set()),
        ("^zoe", set()),
        ("[", set()),
        ("\\", set()),
        ("a+", set()),
        ("mary-jo", {"Mary-Jo O'Neil"}),
    ],
)
async def test_name_search_is_a_case_and_accent_insensitive_literal_prefix_match(
    people, search, expected
):
    data = await people.data(
        "query($name: String) { patients(name: $name) { totalCount nodes { name } } }",
        {"name": search},
    )
    found = [node["name"] for node in data["patients"]["nodes"]]
    assert set(found) == expected
    assert len(found) == len(expected)
    assert data["patients"]["totalCount"] == len(expected)
