"""Reports, end to end over HTTP.

Every report answer is compared with values computed here, in plain Python, from the
stored records (MongoDB collections and the SQL `bills` table read with a plain query),
following the rules in the schema descriptions; the report pipelines are never called.
Then: what analysts may see (k-anonymity, no patient identifiers), who may call reports,
and the Redis result cache (hits, separate entries per arguments and disclosure level,
read-after-write after every kind of write, single-flight in one process and across
processes), on the in-process stand-in and on real Redis, and with Redis down.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from bson import ObjectId

from auth.roles import Role
from datasources.redis.client import create_redis
from datasources.redis.report_cache import CacheOutcome, ReportCache
from tests.conftest import http_client
from tests.factories import book, create_doctor, create_patient, future_slot, iso
from tests.support import GraphQLClient, issue_token

DAY = timedelta(days=1)
K = 5  # the default minimum group size for analysts
REDIS_DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
PRIVACY = "privacy { minimumGroupSize suppressedGroups }"
PERIOD_ARGS = "$from: DateTime, $before: DateTime"

QUERIES = {
    "topDoctors": f"""
        query($limit: Int! = 10, {PERIOD_ARGS}) {{
          report: topDoctors(limit: $limit, from: $from, before: $before) {{
            rows {{ rank doctorId doctorName specialty distinctPatients appointments }}
            {PRIVACY}
          }}
        }}""",
    "diseaseTreatmentDurations": f"""
        query({PERIOD_ARGS}) {{
          report: diseaseTreatmentDurations(from: $from, before: $before) {{
            rows {{ disease patients averageDays }}
            {PRIVACY}
          }}
        }}""",
    "monthlyAppointmentTrend": f"""
        query($year: Int!) {{
          report: monthlyAppointmentTrend(year: $year) {{
            year
            months {{ month suppressed scheduled completed cancelled patients }}
            {PRIVACY}
          }}
        }}""",
    "averagePrescriptionCostByDisease": f"""
        query({PERIOD_ARGS}) {{
          report: averagePrescriptionCostByDisease(from: $from, before: $before) {{
            rows {{
              disease prescriptions averagePrescriptionCost prescribedPatients
              bills averageBilledTotal billedPatients
            }}
            {PRIVACY}
          }}
        }}""",
}
STATS = "query { reportCacheStats { hits misses errors } }"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# The demo data (anchor 2026-03-02) runs from 2025-09-01 to 2026-04-06, all in the past.
PERIODS = {
    "all time": (None, None),
    "closed period in the past": (utc(2025, 12, 1), utc(2026, 2, 15)),
    "from only": (utc(2026, 1, 1), None),
    "before only": (None, utc(2026, 1, 1)),
    "before after now": (utc(2026, 2, 1), utc(2099, 1, 1)),
}


def period_variables(start: datetime | None, before: datetime | None) -> dict[str, str]:
    variables = {}
    if start is not None:
        variables["from"] = iso(start)
    if before is not None:
        variables["before"] = iso(before)
    return variables


def parse_moment(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the settings: which Redis, which k -------------------------------------------------


@pytest.fixture
def redis_backend() -> str:
    """The Redis the app uses: "stand-in" (in-process), "real" or "down"."""
    return "stand-in"


@pytest.fixture
def min_group_size() -> int | None:
    """k for analysts; None: the settings' default."""
    return None


@pytest.fixture
def settings(settings, redis_backend: str, min_group_size: int | None, request):
    if min_group_size is not None:
        settings = settings.with_overrides(report_min_group_size=min_group_size)
    if redis_backend == "real":
        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as leftover:
            leftover.flushdb()  # no cached results or counters from an interrupted run
        return settings.with_overrides(redis_url=url)
    if redis_backend == "down":
        return settings.with_overrides(redis_url=REDIS_DOWN_URL)
    return settings


BOTH_REDIS = pytest.mark.parametrize("redis_backend", ["stand-in", "real"])


@pytest.fixture
async def analyst(app, services):
    async with http_client(app, await issue_token(services, Role.ANALYST)) as signed_in:
        yield signed_in


# -- asking for reports -------------------------------------------------------------------


@dataclass
class Answer:
    body: dict

    @property
    def report(self) -> dict:
        return self.body["data"]["report"]

    @property
    def cache(self) -> list[dict]:
        return self.body.get("extensions", {}).get("reportCache", [])

    @property
    def hit(self) -> bool:
        (outcome,) = self.cache
        return outcome["hit"]


async def ask(client: GraphQLClient, report: str, variables: dict | None = None) -> Answer:
    body = await client.post(QUERIES[report], variables or {})
    assert "errors" not in body, body["errors"]
    return Answer(body)


# -- the stored records, read directly ----------------------------------------------------


def as_utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite hands back text to a plain query
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass
class Stored:
    doctors: dict[ObjectId, dict]
    appointments: list[dict]
    prescriptions: list[dict]
    bills: list[dict]
    patient_ids: list[str]


async def stored(services) -> Stored:
    db = services.db
    async with services.engine.connect() as connection:
        result = await connection.execute(
            sa.text("SELECT patient_id, disease, total_cost_cents, created_at FROM bills")
        )
        bills = [{**row, "created_at": as_utc(row["created_at"])} for row in result.mappings()]
    return Stored(
        doctors={d["_id"]: d for d in await db["doctors"].find().to_list()},
        appointments=await db["appointments"].find().to_list(),
        prescriptions=await db["prescriptions"].find().to_list(),
        bills=bills,
        patient_ids=[str(p["_id"]) for p in await db["patients"].find({}, {"_id": 1}).to_list()],
    )


def within(moment: datetime, start: datetime | None, before: datetime | None) -> bool:
    return (start is None or moment >= start) and (before is None or moment < before)


def visible(patients: int, k: int | None) -> bool:
    return k is None or patients >= k


def privacy(k: int | None, suppressed: int) -> dict:
    return {"minimumGroupSize": k, "suppressedGroups": suppressed}


HALF_CENT = Fraction(1, 200)


class Money:
    """A Decimal string with two decimals within half a cent of the exact average."""

    def __init__(self, total: int, count: int) -> None:
        self.exact = Fraction(total, count * 100)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, str):
            return False
        value = Decimal(other)
        two_decimals = value.as_tuple().exponent == -2
        return two_decimals and abs(Fraction(value) - self.exact) <= HALF_CENT

    def __repr__(self) -> str:
        return f"Money(~{float(self.exact):.4f})"


def expected_top_doctors(s: Stored, *, start, before, limit=10, k=None) -> dict:
    """Doctors by distinct patients, then appointments, then id; cancelled ones don't count."""
    appointments: dict[ObjectId, int] = defaultdict(int)
    patients: dict[ObjectId, set] = defaultdict(set)
    for a in s.appointments:
        if a["status"] != "CANCELLED" and within(a["start"], start, before):
            appointments[a["doctorId"]] += 1
            patients[a["doctorId"]].add(a["patientId"])
    ranked = sorted(appointments, key=lambda d: (-len(patients[d]), -appointments[d], str(d)))
    shown = [d for d in ranked if visible(len(patients[d]), k)]
    rows = [
        {
            "rank": rank,
            "doctorId": str(d),
            "doctorName": f"{s.doctors[d]['givenName']} {s.doctors[d]['familyName']}",
            "specialty": s.doctors[d]["specialty"],
            "distinctPatients": len(patients[d]),
            "appointments": appointments[d],
        }
        for rank, d in enumerate(shown[:limit], start=1)
    ]
    return {"rows": rows, "privacy": privacy(k, len(ranked) - len(shown))}


def current_hour() -> datetime:
    """Open prescriptions run until the start of the current hour (schema description)."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def expected_durations(s: Stored, *, start, before, now, k=None) -> dict:
    """One episode per (patient, disease): earliest start to latest end of its COMPLETED
    diagnosing visits and indicated prescriptions (open ones run to min(before, the
    start of the current hour))."""
    open_until = min(before, now) if before else now
    episodes: dict[tuple, list[datetime]] = {}

    def add(patient, disease, begin: datetime, finish: datetime) -> None:
        span = episodes.setdefault((patient, disease), [begin, finish])
        span[0], span[1] = min(span[0], begin), max(span[1], finish)

    for a in s.appointments:
        diagnosis = a.get("diagnosis")
        if a["status"] == "COMPLETED" and isinstance(diagnosis, str):
            if within(a["start"], start, before):
                add(a["patientId"], diagnosis, a["start"], a["end"])
    for p in s.prescriptions:
        if isinstance(p.get("indication"), str) and within(p["startDate"], start, before):
            finish = p.get("endDate") or max(open_until, p["startDate"])
            add(p["patientId"], p["indication"], p["startDate"], finish)
    lengths: dict[str, list[float]] = defaultdict(list)
    for (_, disease), (begin, finish) in episodes.items():
        lengths[disease].append((finish - begin) / DAY)
    rows, suppressed = [], 0
    for disease in sorted(lengths):
        days = lengths[disease]
        if not visible(len(days), k):
            suppressed += 1
            continue
        average = sum(days) / len(days)
        # Shown to two decimals; `now` differs from the server's by seconds.
        rows.append(
            {
                "disease": disease,
                "patients": len(days),
                "averageDays": pytest.approx(average, abs=0.006),
            }
        )
    return {"rows": rows, "privacy": privacy(k, suppressed)}


def expected_monthly(s: Stored, *, year: int, k=None) -> dict:
    """All twelve months; a month with 1..k-1 patients is suppressed for analysts."""
    months, suppressed = [], 0
    for month in range(1, 13):
        inside = [
            a for a in s.appointments if a["start"].year == year and a["start"].month == month
        ]
        patients = len({a["patientId"] for a in inside})
        if patients and not visible(patients, k):
            suppressed += 1
            months.append(
                {"month": month, "suppressed": True}
                | dict.fromkeys(("scheduled", "completed", "cancelled", "patients"))
            )
            continue
        counts = {
            status.lower(): sum(a["status"] == status for a in inside)
            for status in ("SCHEDULED", "COMPLETED", "CANCELLED")
        }
        months.append({"month": month, "suppressed": False, **counts, "patients": patients})
    return {"year": year, "months": months, "privacy": privacy(k, suppressed)}


def expected_costs(s: Stored, *, start, before, k=None) -> dict:
    """Prescriptions per indication beside bills per disease, joined by the name."""
    prescribed: dict[str, list] = defaultdict(list)
    for p in s.prescriptions:
        if isinstance(p.get("indication"), str) and within(p["startDate"], start, before):
            prescribed[p["indication"]].append((p["patientId"], p["costCents"]))
    billed: dict[str, list] = defaultdict(list)
    for b in s.bills:
        if within(b["created_at"], start, before):
            billed[b["disease"]].append((b["patient_id"], b["total_cost_cents"]))

    def side(items: list, count: str, average: str, patients: str) -> dict:
        distinct = len({patient for patient, _ in items})
        if not items or not visible(distinct, k):
            return dict.fromkeys((count, average, patients))
        total = sum(cents for _, cents in items)
        return {count: len(items), average: Money(total, len(items)), patients: distinct}

    rows, suppressed = [], 0
    for disease in sorted(prescribed.keys() | billed.keys()):
        row = {
            "disease": disease,
            **side(
                prescribed[disease],
                "prescriptions",
                "averagePrescriptionCost",
                "prescribedPatients",
            ),
            **side(billed[disease], "bills", "averageBilledTotal", "billedPatients"),
        }
        if row["prescriptions"] is None and row["bills"] is None:
            suppressed += 1
        else:
            rows.append(row)
    return {"rows": rows, "privacy": privacy(k, suppressed)}


def expected(report: str, s: Stored, variables: dict, k: int | None = None) -> dict:
    start, before = parse_moment(variables.get("from")), parse_moment(variables.get("before"))
    if report == "topDoctors":
        return expected_top_doctors(
            s, start=start, before=before, limit=variables.get("limit", 10), k=k
        )
    if report == "diseaseTreatmentDurations":
        return expected_durations(s, start=start, before=before, now=current_hour(), k=k)
    if report == "monthlyAppointmentTrend":
        return expected_monthly(s, year=variables["year"], k=k)
    return expected_costs(s, start=start, before=before, k=k)


# -- hand-made records for the edges -------------------------------------------------------

RARE = "Rare fever"  # one patient only: visible to administrators, never to analysts
EDGE_VISIT = utc(2026, 2, 10, 10, 0)  # completed with a diagnosis of RARE
PLAIN_VISIT = utc(2026, 2, 11, 10, 0)  # completed without a diagnosis
OVERDUE_VISIT = utc(2026, 2, 5, 10, 0)  # still SCHEDULED although in the past
OPEN_RX_START = "2026-02-12"  # RARE, no end date
FUTURE_YEAR = future_slot(days=3).year  # of the hand-made upcoming visits

COMPLETE = """
mutation($id: ID!, $diagnosis: String) {
  completeAppointment(id: $id, diagnosis: $diagnosis) {
    __typename ... on Appointment { id status diagnosis }
  }
}"""
CANCEL = """
mutation($id: ID!) {
  cancelAppointment(id: $id, reason: "Patient request") {
    __typename ... on Appointment { id status }
  }
}"""
PRESCRIBE = """
mutation($input: CreatePrescriptionInput!) {
  createPrescription(input: $input) { id indication startDate endDate cost }
}"""
UPDATE_PRESCRIPTION = """
mutation($id: ID!, $input: UpdatePrescriptionInput!) {
  updatePrescription(id: $id, input: $input) { id cost }
}"""
BILL = """
mutation($input: CreateBillInput!) { createBill(input: $input) { id disease totalCost } }"""
UPDATE_BILL = """
mutation($id: ID!, $input: UpdateBillInput!) { updateBill(id: $id, input: $input) { id } }"""
DELETE_BILL = "mutation($id: ID!) { deleteBill(id: $id) }"
UPDATE_DOCTOR = """
mutation($id: ID!, $input: UpdateDoctorInput!) { updateDoctor(id: $id, input: $input) { id } }"""
UPDATE_APPOINTMENT = """
mutation($id: ID!, $input: UpdateAppointmentInput!) {
  updateAppointment(id: $id, input: $input) { id diagnosis }
}"""


@dataclass
class Edges:
    patient: dict  # P1: every hand-made visit and prescription
    other_patient: dict  # P2: one cancelled visit only
    doctor: dict
    visit: str  # COMPLETED at EDGE_VISIT, diagnosis RARE, billed
    plain_visit: str  # COMPLETED at PLAIN_VISIT, no diagnosis
    overdue: str  # SCHEDULED at OVERDUE_VISIT
    upcoming: str  # SCHEDULED in the future, diagnosis set while scheduled
    open_rx: str  # RARE, no end date
    bill: str


_slots = itertools.count()


@pytest.fixture(autouse=True)
def fresh_slots() -> None:
    global _slots
    _slots = itertools.count()


def next_slot() -> datetime:
    """A fresh future slot, eight a day from three days ahead: no two bookings collide."""
    n = next(_slots)
    return future_slot(days=3 + n // 8, hour=9 + n % 8)


async def book_at(client, services, patient, doctor, moment: datetime | None = None) -> str:
    """Book through the API; with `moment`, then move the visit there in the database
    (the API books only the future; a visit must have started to be completed)."""
    booked = await book(client, patient, doctor, next_slot())
    assert booked["__typename"] == "Appointment", booked
    if moment is not None:
        await services.db["appointments"].update_one(
            {"_id": ObjectId(booked["id"])},
            {"$set": {"start": moment, "end": moment + timedelta(minutes=30)}},
        )
    return booked["id"]


async def complete(client, appointment_id: str, diagnosis: str | None) -> None:
    data = await client.data(COMPLETE, {"id": appointment_id, "diagnosis": diagnosis})
    assert data["completeAppointment"]["status"] == "COMPLETED", data


async def prescribe(client, patient, doctor, *, indication, start, end=None, cost="10.00"):
    data = await client.data(
        PRESCRIBE,
        {
            "input": {
                "patientId": patient["id"],
                "doctorId": doctor["id"],
                "drug": "Edgeomycin",
                "dosage": {"value": 5, "unit": "MG"},
                "frequency": "ONCE_DAILY",
                "startDate": start,
                "endDate": end,
                "cost": cost,
                "indication": indication,
            }
        },
    )
    return data["createPrescription"]["id"]


async def create_bill(client, patient, *, disease, total, appointment_id=None) -> str:
    data = await client.data(
        BILL,
        {
            "input": {
                "patientId": patient["id"],
                "appointmentId": appointment_id,
                "disease": disease,
                "totalCost": total,
            }
        },
    )
    return data["createBill"]["id"]


@pytest.fixture
async def edges(client, services) -> Edges:
    """Records for the rules' edges, made through the API as an administrator."""
    patient = await create_patient(client, givenName="Edith", familyName="Edge")
    other = await create_patient(client, givenName="Otto", familyName="Other")
    doctor = await create_doctor(client, givenName="Erin", familyName="Edgeworth")
    visit = await book_at(client, services, patient, doctor, EDGE_VISIT)
    plain_visit = await book_at(client, services, patient, doctor, PLAIN_VISIT)
    overdue = await book_at(client, services, patient, doctor, OVERDUE_VISIT)
    upcoming = await book_at(client, services, patient, doctor)
    cancelled = await book_at(client, services, other, doctor)
    await complete(client, visit, RARE)
    await complete(client, plain_visit, None)
    # A diagnosis on a visit that has not happened: not a COMPLETED visit, never counted.
    await client.data(UPDATE_APPOINTMENT, {"id": upcoming, "input": {"diagnosis": RARE}})
    await client.data(CANCEL, {"id": cancelled})
    open_rx = await prescribe(
        client, patient, doctor, indication=RARE, start=OPEN_RX_START, cost="12.34"
    )
    # No indication: neither a treatment episode nor a cost of any disease.
    await prescribe(client, patient, doctor, indication=None, start="2026-02-01", cost="99.00")
    bill = await create_bill(client, patient, disease=RARE, total="250.00", appointment_id=visit)
    return Edges(patient, other, doctor, visit, plain_visit, overdue, upcoming, open_rx, bill)


@pytest.fixture
async def data_set(demo, edges) -> Edges:
    """The demo data set plus the hand-made edge records."""
    return edges


# -- 1. correctness -------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
async def test_top_doctors_match_the_stored_appointments(client, services, data_set, period):
    variables = {"limit": 100, **period_variables(*PERIODS[period])}
    answer = await ask(client, "topDoctors", variables)
    assert answer.report == expected("topDoctors", await stored(services), variables)


async def test_top_doctors_limit_keeps_the_best_ranked(client, services, data_set):
    answer = await ask(client, "topDoctors", {"limit": 3})
    want = expected("topDoctors", await stored(services), {"limit": 3})
    assert answer.report == want
    assert [row["rank"] for row in answer.report["rows"]] == [1, 2, 3]


async def test_top_doctors_ties_and_cancelled_visits(client, services):
    """Distinct patients first, then appointments, then doctor id; a cancelled visit is
    neither an appointment nor a patient of the doctor."""
    # Created in this order, so ids ascend as listed; names descend, to tell the orders apart.
    zed = await create_doctor(client, givenName="Zed", familyName="Zimmer")
    amy = await create_doctor(client, givenName="Amy", familyName="Adams")
    bob = await create_doctor(client, givenName="Bob", familyName="Brown")
    cat = await create_doctor(client, givenName="Cat", familyName="Carter")
    p1, p2, p3 = [await create_patient(client, givenName=name) for name in ("Pia", "Pam", "Pol")]
    for doctor, patients in (
        (zed, [p1, p2]),
        (amy, [p2, p1]),
        (bob, [p1, p2, p1]),
        (cat, [p3] * 3),
    ):
        for patient in patients:
            await book_at(client, services, patient, doctor)
    # Counted, cat would lead with two patients and four appointments.
    await client.data(CANCEL, {"id": await book_at(client, services, p1, cat)})
    # Only a cancelled visit: dan is nobody's doctor in this report.
    dan = await create_doctor(client, givenName="Dan", familyName="Dunn")
    await client.data(CANCEL, {"id": await book_at(client, services, p3, dan)})

    answer = await ask(client, "topDoctors", {"limit": 10})
    summary = [
        (row["doctorName"], row["distinctPatients"], row["appointments"])
        for row in answer.report["rows"]
    ]
    assert summary == [
        ("Bob Brown", 2, 3),
        ("Zed Zimmer", 2, 2),
        ("Amy Adams", 2, 2),
        ("Cat Carter", 1, 3),
    ]
    assert answer.report == expected("topDoctors", await stored(services), {"limit": 10})


@pytest.mark.parametrize("period", PERIODS)
async def test_treatment_durations_match_the_stored_episodes(client, services, data_set, period):
    variables = period_variables(*PERIODS[period])
    answer = await ask(client, "diseaseTreatmentDurations", variables)
    assert answer.report == expected("diseaseTreatmentDurations", await stored(services), variables)


async def test_open_prescription_runs_until_before_or_now(client, services, edges):
    """The one RARE episode: the visit on EDGE_VISIT and an open prescription from
    OPEN_RX_START; the undiagnosed, the scheduled and the unindicated records add nothing."""

    async def rare_days(variables: dict) -> float | None:
        rows = (await ask(client, "diseaseTreatmentDurations", variables)).report["rows"]
        return next((row["averageDays"] for row in rows if row["disease"] == RARE), None)

    until = utc(2026, 3, 1)
    assert await rare_days({"before": iso(until)}) == pytest.approx(
        (until - EDGE_VISIT) / DAY, abs=0.006
    )
    now = current_hour()
    assert await rare_days({"before": iso(utc(2099, 1, 1))}) == pytest.approx(
        (now - EDGE_VISIT) / DAY, abs=0.01
    )
    assert await rare_days({}) == pytest.approx((now - EDGE_VISIT) / DAY, abs=0.01)
    # From the day after the visit only the prescription is in the period.
    start = utc(2026, 2, 11)
    rx_start = utc(2026, 2, 12)
    assert await rare_days({"from": iso(start), "before": iso(until)}) == pytest.approx(
        (until - rx_start) / DAY, abs=0.006
    )
    # Before the prescription starts only the 30-minute visit counts.
    assert await rare_days({"before": iso(rx_start)}) == pytest.approx(30 / 1440, abs=0.006)
    # Nothing of RARE starts in this period.
    assert await rare_days({"before": iso(utc(2026, 2, 1))}) is None


@pytest.mark.parametrize("year", sorted({2025, 2026, FUTURE_YEAR}))
async def test_monthly_trend_matches_the_stored_appointments(client, services, data_set, year):
    answer = await ask(client, "monthlyAppointmentTrend", {"year": year})
    report = answer.report
    assert [m["month"] for m in report["months"]] == list(range(1, 13))
    assert report == expected("monthlyAppointmentTrend", await stored(services), {"year": year})


async def test_monthly_trend_has_zeros_for_empty_months(client):
    report = (await ask(client, "monthlyAppointmentTrend", {"year": 2001})).report
    assert report["months"] == [
        {
            "month": m,
            "suppressed": False,
            "scheduled": 0,
            "completed": 0,
            "cancelled": 0,
            "patients": 0,
        }
        for m in range(1, 13)
    ]


async def test_a_prescription_starting_later_is_a_zero_length_episode(client, services, edges):
    """Found by a test over HTTP: an open prescription starting in 2030 made its episode
    end 'now', before it began, and the average came out negative."""
    disease = "Future flu"
    patient = await create_patient(client, givenName="Fay", familyName="Future")
    await prescribe(client, patient, edges.doctor, indication=disease, start="2030-01-01")
    rows = (await ask(client, "diseaseTreatmentDurations", {})).report["rows"]
    assert [row["averageDays"] for row in rows if row["disease"] == disease] == [0]


@pytest.mark.parametrize("period", PERIODS)
async def test_costs_match_stored_prescriptions_and_bills(client, services, data_set, period):
    variables = period_variables(*PERIODS[period])
    answer = await ask(client, "averagePrescriptionCostByDisease", variables)
    assert answer.report == expected(
        "averagePrescriptionCostByDisease", await stored(services), variables
    )


async def test_costs_join_prescriptions_and_bills_by_disease(client, services, edges):
    """Only the edge records: RARE has one prescription (the unindicated one is no
    disease's) and one bill; a disease billed but never prescribed has a null side."""
    await create_bill(
        client,
        edges.patient,
        disease="Billed only",
        total="80.50",
        appointment_id=edges.plain_visit,
    )
    rows = (await ask(client, "averagePrescriptionCostByDisease")).report["rows"]
    assert rows == [
        {
            "disease": "Billed only",
            "prescriptions": None,
            "averagePrescriptionCost": None,
            "prescribedPatients": None,
            "bills": 1,
            "averageBilledTotal": "80.50",
            "billedPatients": 1,
        },
        {
            "disease": RARE,
            "prescriptions": 1,
            "averagePrescriptionCost": "12.34",
            "prescribedPatients": 1,
            "bills": 1,
            "averageBilledTotal": "250.00",
            "billedPatients": 1,
        },
    ]


async def test_periods_include_from_and_exclude_before(client, services, edges):
    """[from, before) on each source: appointment starts, prescription start dates (UTC
    midnight) and bill creation times, each probed at exactly its own instant."""
    bill = await client.data("query($id: ID!) { bill(id: $id) { createdAt } }", {"id": edges.bill})
    billed_at = parse_moment(bill["bill"]["createdAt"])
    rx_start = utc(2026, 2, 12)
    probes = [
        ("topDoctors", EDGE_VISIT),
        ("diseaseTreatmentDurations", EDGE_VISIT),
        ("diseaseTreatmentDurations", rx_start),
        ("averagePrescriptionCostByDisease", rx_start),
        ("averagePrescriptionCostByDisease", billed_at),
    ]
    records = await stored(services)
    for report, instant in probes:
        for variables in (
            {"from": iso(instant), "before": iso(instant + timedelta(milliseconds=1))},
            {"from": iso(instant - timedelta(milliseconds=1)), "before": iso(instant)},
        ):
            answer = await ask(client, report, variables)
            assert answer.report == expected(report, records, variables), (report, variables)
    # Spot checks by hand: the bill is in a period starting at its creation, not before.
    costs = "averagePrescriptionCostByDisease"
    starting = {"from": iso(billed_at)}
    ending = {"before": iso(billed_at)}
    assert [r["bills"] for r in (await ask(client, costs, starting)).report["rows"]] == [1]
    assert [r["bills"] for r in (await ask(client, costs, ending)).report["rows"]] == [None]


async def test_monthly_trend_uses_utc_month_and_year_boundaries(client, services):
    patient = await create_patient(client)
    doctor = await create_doctor(client)
    moments = [
        utc(2025, 12, 31, 23, 45),
        utc(2026, 1, 1, 0, 0),
        utc(2026, 5, 31, 23, 45),
        utc(2026, 6, 1, 0, 0),
        utc(2026, 12, 31, 23, 45),
        utc(2027, 1, 1, 0, 0),
    ]
    for moment in moments:
        await book_at(client, services, patient, doctor, moment)
    months = (await ask(client, "monthlyAppointmentTrend", {"year": 2026})).report["months"]
    scheduled = {m["month"]: m["scheduled"] for m in months if m["scheduled"]}
    assert scheduled == {1: 1, 5: 1, 6: 1, 12: 1}
    for year in (2025, 2026, 2027):
        answer = await ask(client, "monthlyAppointmentTrend", {"year": year})
        assert answer.report == expected(
            "monthlyAppointmentTrend", await stored(services), {"year": year}
        )


@pytest.mark.parametrize("billing_backend", ["sqlite", "postgresql"], indirect=True)
async def test_costs_on_each_billing_database(client, services, data_set, billing_backend):
    for period in ("all time", "closed period in the past"):
        variables = period_variables(*PERIODS[period])
        answer = await ask(client, "averagePrescriptionCostByDisease", variables)
        assert answer.report == expected(
            "averagePrescriptionCostByDisease", await stored(services), variables
        )


# -- 2. privacy -----------------------------------------------------------------------------

PRIVACY_CASES = [
    ("topDoctors", {"limit": 100}),
    ("diseaseTreatmentDurations", {}),
    ("diseaseTreatmentDurations", period_variables(*PERIODS["closed period in the past"])),
    # The hand-made upcoming visits: two patients in that month.
    ("monthlyAppointmentTrend", {"year": FUTURE_YEAR}),
    ("averagePrescriptionCostByDisease", {}),
    ("averagePrescriptionCostByDisease", period_variables(*PERIODS["from only"])),
]


def withheld_from_admin_result(report: str, full: dict, k: int) -> tuple[dict, int]:
    """What an analyst should get, derived from the administrator's answer."""
    if report == "monthlyAppointmentTrend":
        months, hidden = [], 0
        for m in full["months"]:
            if 0 < m["patients"] < k:
                hidden += 1
                m = {"month": m["month"], "suppressed": True} | dict.fromkeys(
                    ("scheduled", "completed", "cancelled", "patients")
                )
            months.append(m)
        return {**full, "months": months}, hidden
    if report == "averagePrescriptionCostByDisease":
        rows, hidden = [], 0
        for r in full["rows"]:
            r = dict(r)
            if r["prescribedPatients"] is not None and r["prescribedPatients"] < k:
                r.update(prescriptions=None, averagePrescriptionCost=None, prescribedPatients=None)
            if r["billedPatients"] is not None and r["billedPatients"] < k:
                r.update(bills=None, averageBilledTotal=None, billedPatients=None)
            if r["prescriptions"] is None and r["bills"] is None:
                hidden += 1
            else:
                rows.append(r)
        return {**full, "rows": rows}, hidden
    count = "distinctPatients" if report == "topDoctors" else "patients"
    kept = [r for r in full["rows"] if r[count] >= k]
    hidden = len(full["rows"]) - len(kept)
    if report == "topDoctors":
        kept = [{**r, "rank": rank} for rank, r in enumerate(kept, start=1)]
    return {**full, "rows": kept}, hidden


@pytest.mark.parametrize(("report", "variables"), PRIVACY_CASES)
async def test_analysts_see_no_group_smaller_than_k(
    client, analyst, services, data_set, settings, report, variables
):
    k = settings.report_min_group_size
    assert k == K
    full = (await ask(client, report, variables)).report
    seen = (await ask(analyst, report, variables)).report
    assert full["privacy"] == {"minimumGroupSize": None, "suppressedGroups": 0}

    want, hidden = withheld_from_admin_result(report, {**full, "privacy": None}, k)
    assert hidden > 0, "the data set should have a group below k for this report"
    assert seen == {**want, "privacy": {"minimumGroupSize": k, "suppressedGroups": hidden}}
    # And the same from the stored records directly.
    assert seen == expected(report, await stored(services), variables, k=k)


@pytest.mark.parametrize("min_group_size", [12])
async def test_k_comes_from_the_settings(analyst, services, demo, min_group_size):
    # Demo doctors have 20, 14, 11, 11, 11 and 10 distinct patients.
    seen = (await ask(analyst, "topDoctors", {"limit": 100})).report
    assert [r["distinctPatients"] for r in seen["rows"]] == [20, 14]
    assert seen["privacy"] == {"minimumGroupSize": 12, "suppressedGroups": 4}
    assert seen == expected("topDoctors", await stored(services), {"limit": 100}, k=12)


async def test_analyst_responses_carry_no_patient_identifier(analyst, services, data_set):
    patient_ids = (await stored(services)).patient_ids
    assert len(patient_ids) == 42
    for report, variables in PRIVACY_CASES:
        body = await analyst.post(QUERIES[report], variables)
        assert "errors" not in body
        text = json.dumps(body)
        leaked = [p for p in patient_ids if p in text]
        assert not leaked, f"{report} shows patient ids {leaked}"
        assert "patient" not in text.lower().replace("patients", ""), text


MINIMAL = {
    "topDoctors": "{ topDoctors { rows { doctorId } } }",
    "diseaseTreatmentDurations": "{ diseaseTreatmentDurations { rows { disease } } }",
    "monthlyAppointmentTrend": "{ monthlyAppointmentTrend(year: 2026) { year } }",
    "averagePrescriptionCostByDisease": "{ averagePrescriptionCostByDisease { rows { disease } } }",
    "reportCacheStats": "{ reportCacheStats { hits } }",
}


async def caller(app, services, role: Role | str | None, stored_records: Stored):
    if role is None:
        return http_client(app)
    if role == "ADMIN without second factor":
        return http_client(app, await issue_token(services, Role.ADMIN, mfa=False))
    ids = {}
    if role is Role.PATIENT:
        ids["patient_id"] = ObjectId(stored_records.patient_ids[0])
    if role is Role.DOCTOR:
        ids["doctor_id"] = next(iter(stored_records.doctors))
    return http_client(app, await issue_token(services, role, **ids))


@pytest.mark.parametrize(
    ("role", "code"),
    [
        (Role.PATIENT, "FORBIDDEN"),
        (Role.DOCTOR, "FORBIDDEN"),
        (Role.PHARMACIST, "FORBIDDEN"),
        ("ADMIN without second factor", "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ],
    ids=["patient", "doctor", "pharmacist", "admin-without-mfa", "anonymous"],
)
async def test_only_admins_and_analysts_may_run_reports(app, services, demo, role, code):
    async with await caller(app, services, role, await stored(services)) as other:
        for field, query in MINIMAL.items():
            body = await other.post(query)
            assert body["data"] is None or body["data"][field] is None, body
            assert [e["extensions"]["code"] for e in body["errors"]] == [code], (field, body)


async def test_report_cache_stats_are_for_admins_only(client, analyst, demo):
    for field, query in MINIMAL.items():
        if field != "reportCacheStats":
            assert (await analyst.data(query))[field] is not None
    error = await analyst.error(MINIMAL["reportCacheStats"])
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert (await client.data(STATS))["reportCacheStats"]["errors"] == 0


BACKWARDS = {"from": "2026-02-01T00:00:00Z", "before": "2026-01-31T00:00:00Z"}


@pytest.mark.parametrize(
    ("report", "variables", "field"),
    [
        ("topDoctors", {"limit": 0}, "limit"),
        ("topDoctors", {"limit": 101}, "limit"),
        ("topDoctors", BACKWARDS, "before"),
        ("diseaseTreatmentDurations", BACKWARDS, "before"),
        ("averagePrescriptionCostByDisease", BACKWARDS, "before"),
        ("monthlyAppointmentTrend", {"year": 1899}, "year"),
    ],
)
async def test_bad_arguments_are_refused(client, report, variables, field):
    error = await client.error(QUERIES[report], variables)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field


# -- 3 and 4. the cache, on the stand-in and on real Redis ----------------------------------

# Durations with a `before` in the past: their value, and cache key, do not move with now.
WATCHED = {
    "topDoctors": {"limit": 100},
    "diseaseTreatmentDurations": {"before": iso(utc(2026, 6, 1))},
    "monthlyAppointmentTrend": {"year": 2026},
    "averagePrescriptionCostByDisease": {},
}


@BOTH_REDIS
async def test_second_identical_request_is_a_hit(client, services, data_set, redis_backend):
    for report, variables in WATCHED.items():
        first = await ask(client, report, variables)
        second = await ask(client, report, variables)
        assert first.cache == [{"report": report, "hit": False}]
        assert second.cache == [{"report": report, "hit": True}]
        assert second.report == first.report
        assert second.report == expected(report, await stored(services), variables)


@BOTH_REDIS
async def test_arguments_and_disclosure_level_are_separate_entries(
    client, analyst, data_set, redis_backend
):
    durations = "diseaseTreatmentDurations"
    period = WATCHED[durations]
    full = await ask(client, durations, period)
    assert not full.hit
    assert (await ask(client, durations, {"before": iso(utc(2026, 5, 1))})).hit is False
    assert (await ask(client, durations, {**period, "from": iso(utc(2025, 1, 1))})).hit is False
    # An analyst after an admin: never the admin's cached result.
    seen = await ask(analyst, durations, period)
    assert not seen.hit
    assert seen.report["privacy"]["minimumGroupSize"] == K
    assert RARE not in {row["disease"] for row in seen.report["rows"]}
    assert len(seen.report["rows"]) < len(full.report["rows"])
    again = await ask(analyst, durations, period)
    assert again.hit and again.report == seen.report
    admin_again = await ask(client, durations, period)
    assert admin_again.hit and admin_again.report == full.report

    assert (await ask(client, "topDoctors", {"limit": 100})).hit is False
    assert (await ask(client, "topDoctors", {"limit": 5})).hit is False
    assert (await ask(client, "topDoctors", {"limit": 5})).hit is True
    assert (await ask(client, "monthlyAppointmentTrend", {"year": 2025})).hit is False
    assert (await ask(client, "monthlyAppointmentTrend", {"year": 2026})).hit is False


@BOTH_REDIS
async def test_analyst_first_then_admin_gets_everything(client, analyst, data_set, redis_backend):
    seen = await ask(analyst, "averagePrescriptionCostByDisease")
    full = await ask(client, "averagePrescriptionCostByDisease")
    assert not full.hit
    assert full.report["privacy"]["minimumGroupSize"] is None
    assert RARE in {row["disease"] for row in full.report["rows"]}
    assert RARE not in {row["disease"] for row in seen.report["rows"]}


async def _book_other_patient(client, services, edges: Edges) -> None:
    await book_at(client, services, edges.other_patient, edges.doctor)


async def _cancel_upcoming(client, services, edges: Edges) -> None:
    await client.data(CANCEL, {"id": edges.upcoming})


async def _complete_overdue(client, services, edges: Edges) -> None:
    await complete(client, edges.overdue, RARE)


async def _diagnose_plain_visit(client, services, edges: Edges) -> None:
    diagnosis = {"diagnosis": "Common cold"}
    await client.data(UPDATE_APPOINTMENT, {"id": edges.plain_visit, "input": diagnosis})


async def _prescribe_other_patient(client, services, edges: Edges) -> None:
    await prescribe(
        client,
        edges.other_patient,
        edges.doctor,
        indication=RARE,
        start="2026-03-01",
        end="2026-03-31",
        cost="40.00",
    )


async def _change_prescription_cost(client, services, edges: Edges) -> None:
    await client.data(UPDATE_PRESCRIPTION, {"id": edges.open_rx, "input": {"cost": "99.99"}})


async def _bill_plain_visit(client, services, edges: Edges) -> None:
    await create_bill(
        client, edges.patient, disease=RARE, total="120.00", appointment_id=edges.plain_visit
    )


async def _change_bill_total(client, services, edges: Edges) -> None:
    await client.data(UPDATE_BILL, {"id": edges.bill, "input": {"totalCost": "300.00"}})


async def _delete_bill(client, services, edges: Edges) -> None:
    await client.data(DELETE_BILL, {"id": edges.bill})


async def _rename_doctor(client, services, edges: Edges) -> None:
    await client.data(UPDATE_DOCTOR, {"id": edges.doctor["id"], "input": {"givenName": "Erica"}})


Write = Callable[[GraphQLClient, Any, Edges], Awaitable[None]]
WRITES: dict[str, tuple[Write, str]] = {
    "createAppointment": (_book_other_patient, "topDoctors"),
    "cancelAppointment": (_cancel_upcoming, "topDoctors"),
    "completeAppointment": (_complete_overdue, "diseaseTreatmentDurations"),
    "completeAppointment (monthly)": (_complete_overdue, "monthlyAppointmentTrend"),
    "updateAppointment diagnosis": (_diagnose_plain_visit, "diseaseTreatmentDurations"),
    "createPrescription": (_prescribe_other_patient, "averagePrescriptionCostByDisease"),
    "updatePrescription": (_change_prescription_cost, "averagePrescriptionCostByDisease"),
    "createBill": (_bill_plain_visit, "averagePrescriptionCostByDisease"),
    "updateBill": (_change_bill_total, "averagePrescriptionCostByDisease"),
    "deleteBill": (_delete_bill, "averagePrescriptionCostByDisease"),
    "updateDoctor name": (_rename_doctor, "topDoctors"),
}


@BOTH_REDIS
@pytest.mark.parametrize("write", WRITES)
async def test_a_write_makes_the_next_read_miss_and_see_it(
    client, services, edges, redis_backend, write
):
    change, report = WRITES[write]
    variables = WATCHED[report]
    before = await ask(client, report, variables)
    assert (await ask(client, report, variables)).hit
    await change(client, services, edges)
    after = await ask(client, report, variables)
    assert not after.hit, f"{report} served from the cache after {write}"
    assert after.report != before.report, f"{write} should change {report}"
    assert after.report == expected(report, await stored(services), variables)


@BOTH_REDIS
async def test_stats_count_hits_and_misses(client, demo, redis_backend):
    async def stats() -> dict:
        return (await client.data(STATS))["reportCacheStats"]

    start = await stats()
    await ask(client, "topDoctors")  # miss
    await ask(client, "topDoctors")  # hit
    await ask(client, "topDoctors", {"limit": 3})  # miss
    await ask(client, "topDoctors")  # hit
    await ask(client, "monthlyAppointmentTrend", {"year": 2026})  # miss
    end = await stats()
    assert end["hits"] - start["hits"] == 2
    assert end["misses"] - start["misses"] == 3
    assert end["errors"] == 0


@BOTH_REDIS
async def test_concurrent_identical_requests_compute_once(
    client, services, demo, monkeypatch, redis_backend
):
    calls = 0
    original = services.reports.doctor_activity

    async def slow_doctor_activity(**arguments):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)  # long enough for all twenty to overlap
        return await original(**arguments)

    monkeypatch.setattr(services.reports, "doctor_activity", slow_doctor_activity)
    answers = await asyncio.gather(*(ask(client, "topDoctors") for _ in range(20)))
    assert calls == 1
    assert all(answer.report == answers[0].report for answer in answers)
    assert answers[0].report == expected("topDoctors", await stored(services), {})


@BOTH_REDIS
async def test_a_failed_computation_leaves_nothing_behind(
    client, services, demo, monkeypatch, redis_backend
):
    """Everyone waiting on a computation that fails gets an error, at once; the next
    request computes afresh (no stuck in-flight entry, no leftover Redis lock)."""
    original = services.reports.doctor_activity
    failures = 0

    async def failing_doctor_activity(**arguments):
        nonlocal failures
        failures += 1
        await asyncio.sleep(0.1)
        raise RuntimeError("the aggregation failed")

    monkeypatch.setattr(services.reports, "doctor_activity", failing_doctor_activity)
    bodies = await asyncio.gather(*(client.post(QUERIES["topDoctors"]) for _ in range(5)))
    assert failures == 1
    for body in bodies:
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INTERNAL_SERVER_ERROR"]

    monkeypatch.setattr(services.reports, "doctor_activity", original)
    started = asyncio.get_running_loop().time()
    answer = await ask(client, "topDoctors")
    assert asyncio.get_running_loop().time() - started < 2, "waited on a stale lock"
    assert not answer.hit
    assert answer.report == expected("topDoctors", await stored(services), {})


@BOTH_REDIS
async def test_cached_results_expire(client, services, demo, redis_backend):
    """Entries of old generations are never read again: they must not live forever."""
    for report, variables in WATCHED.items():
        await ask(client, report, variables)
    store = services.report_cache.client
    entries = [
        key
        for key in await store.keys("report:*")
        if key not in (b"report:generation", b"report:stats")
    ]
    assert len(entries) == len(WATCHED)
    for key in entries:
        assert 0 < await store.ttl(key) <= services.settings.report_cache_ttl_s, key


async def test_two_processes_sharing_redis_compute_once(services, demo, redis_url):
    """Two ReportCache instances with their own connections, like two server processes."""
    calls = 0

    async def compute():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        rows = await services.reports.doctor_activity(starts_from=None, before=None)
        return {"doctors": [str(row["_id"]) for row in rows], "call": calls}

    clients = [create_redis(redis_url), create_redis(redis_url)]
    try:
        await clients[0].flushdb()
        caches = [ReportCache(c, ttl_s=60) for c in clients]
        results = await asyncio.gather(
            *(
                cache.fetch(
                    report="topDoctors", arguments={"limit": 10}, scope="full", compute=compute
                )
                for cache in caches
                for _ in range(10)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    assert calls == 1
    values = [value for value, _ in results]
    assert all(value == values[0] for value in values)
    assert values[0]["call"] == 1 and len(values[0]["doctors"]) == 6


async def test_a_failed_invalidation_never_serves_a_stale_result(
    client, services, edges, monkeypatch, caplog
):
    """Redis refuses the generation bump after a write: cached results from before the
    write must not be served, neither right away nor once Redis answers again."""
    costs = "averagePrescriptionCostByDisease"
    before = await ask(client, costs)
    assert (await ask(client, costs)).hit

    async def refuse(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(services.report_cache.client, "incr", refuse)
        await _change_bill_total(client, services, edges)
    assert any(
        r.levelno >= logging.ERROR and "invalidate" in r.getMessage() for r in caplog.records
    )
    for _ in range(2):
        after = await ask(client, costs)
        assert not after.hit
        assert after.report != before.report
        assert after.report == expected(costs, await stored(services), {})


async def test_a_write_in_one_process_invalidates_the_others(redis_url):
    """Process A caches a result; process B's write moves the shared generation on."""
    clients = [create_redis(redis_url), create_redis(redis_url)]
    try:
        await clients[0].flushdb()
        a, b = (ReportCache(c, ttl_s=60) for c in clients)
        version = 1

        async def compute():
            return {"version": version}

        def fetch(cache):
            return cache.fetch(report="topDoctors", arguments={}, scope="full", compute=compute)

        assert await fetch(a) == ({"version": 1}, CacheOutcome("topDoctors", False))
        assert await fetch(b) == ({"version": 1}, CacheOutcome("topDoctors", True))
        version = 2
        await b.invalidate()
        assert await fetch(a) == ({"version": 2}, CacheOutcome("topDoctors", False))
        assert await fetch(b) == ({"version": 2}, CacheOutcome("topDoctors", True))
    finally:
        for c in clients:
            await c.aclose()


# -- 4. Redis down -------------------------------------------------------------------------


@pytest.mark.parametrize("redis_backend", ["down"])
async def test_reports_answer_correctly_while_redis_is_down(
    client, analyst, services, data_set, redis_backend
):
    for report, variables in WATCHED.items():
        for who, k in ((client, None), (analyst, K)):
            body = await who.post(QUERIES[report], variables)
            assert "errors" not in body, body["errors"]
            answer = Answer(body)
            assert answer.report == expected(report, await stored(services), variables, k=k)
            (outcome,) = answer.cache
            assert outcome["hit"] is False and outcome.get("bypassed"), outcome


@pytest.mark.parametrize("redis_backend", ["down"])
async def test_redis_failure_on_read_is_logged_and_counted(client, services, caplog, redis_backend):
    """No write has failed yet: each read tries Redis, logs the failure and computes."""
    caplog.set_level(logging.WARNING)
    for report, variables in WATCHED.items():
        answer = await ask(client, report, variables)
        assert answer.report == expected(report, await stored(services), variables)
        assert answer.cache == [{"report": report, "hit": False, "bypassed": "redis unavailable"}]
    warnings = [
        r
        for r in caplog.records
        if r.name == "datasources.report_cache" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == len(WATCHED), [r.getMessage() for r in caplog.records]
    stats = (await client.data(STATS))["reportCacheStats"]
    assert stats == {"hits": 0, "misses": 0, "errors": len(WATCHED)}


@pytest.mark.parametrize("redis_backend", ["down"])
async def test_writes_and_reads_go_on_while_redis_is_down(
    client, services, demo, caplog, redis_backend
):
    caplog.set_level(logging.WARNING)
    costs = "averagePrescriptionCostByDisease"
    before = await ask(client, costs)
    patient = {"id": (await stored(services)).patient_ids[0]}
    await create_bill(client, patient, disease="Asthma", total="9999.00")
    after = await ask(client, costs)
    assert after.report != before.report
    assert after.report == expected(costs, await stored(services), {})
    assert after.cache[0]["hit"] is False and after.cache[0].get("bypassed")
    assert any(
        record.levelno >= logging.ERROR and "invalidate" in record.getMessage()
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]
