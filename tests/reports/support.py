"""What the report tests share: the report queries, asking for a report, the stored
records read directly, the expected answers computed from them in plain Python (never
with the report pipelines), and hand-made records for the rules' edges.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
import sqlalchemy as sa
from bson import ObjectId

from tests.factories import book, future_slot, iso
from tests.support import GraphQLClient

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


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


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


BOTH_REDIS = pytest.mark.parametrize("redis_backend", ["stand-in", "real"])
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


# Durations with a `before` in the past: their value, and cache key, do not move with now.
WATCHED: dict[str, dict[str, Any]] = {
    "topDoctors": {"limit": 100},
    "diseaseTreatmentDurations": {"before": iso(utc(2026, 6, 1))},
    "monthlyAppointmentTrend": {"year": 2026},
    "averagePrescriptionCostByDisease": {},
}


_slots = itertools.count()


def reset_slots() -> None:
    """Start the slots again (once per test: each test has a database of its own)."""
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
