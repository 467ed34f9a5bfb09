"""Deterministic demo data: the same seed and anchor give the same records.

Dates are offsets from an anchor (by default the Monday of the current week, so a demo
always has past and upcoming appointments); pass an explicit anchor to reproduce a
data set exactly. Writes go straight to the stores' collections in batches, with the
same document shapes the API writes.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bson import ObjectId
from tqdm import tqdm

from datasources.appointments import CANCELLED, COMPLETED, SCHEDULED, slots
from datasources.billing_tables import bills
from datasources.people import with_name_index
from demo import catalogue
from demo.accounts import create_demo_accounts
from runtime.services import Services

log = logging.getLogger(__name__)
BATCH = 1000
# Conditions a visit may be about when the patient has no chronic one.
ACUTE_CONDITIONS = ["Acute bronchitis", "Iron deficiency anaemia"]


@dataclass(frozen=True)
class DemoSize:
    patients: int
    doctors: int
    appointments: int


SIZES = {
    "small": DemoSize(patients=40, doctors=6, appointments=300),
    "default": DemoSize(patients=400, doctors=30, appointments=4000),
    "large": DemoSize(patients=12000, doctors=300, appointments=120000),
}


def default_anchor() -> date:
    today = datetime.now(UTC).date()
    return today - timedelta(days=today.weekday())


class DemoGenerator:
    def __init__(self, *, seed: int, size: DemoSize, anchor: date) -> None:
        self.rng = random.Random(seed)
        self.size = size
        self.anchor = datetime(anchor.year, anchor.month, anchor.day, tzinfo=UTC)
        # Statuses are decided as of the anchor, never the wall clock, so a seed and an
        # anchor give the same data at any hour. (Visits between the anchor and now are
        # still SCHEDULED: the clinic has not recorded them yet, as in life.)
        self.as_of = self.anchor

    def object_id(self) -> ObjectId:
        return ObjectId(self.rng.randbytes(12))

    def stamp(self, days_before_anchor: int) -> datetime:
        return self.anchor - timedelta(days=days_before_anchor)

    def doctors(self) -> list[dict]:
        rng, doctors = self.rng, []
        for i in range(self.size.doctors):
            specialty = catalogue.SPECIALTIES[i % len(catalogue.SPECIALTIES)]
            start_hour = rng.choice([7, 8, 9])
            days = catalogue.WEEKDAYS[:5] if rng.random() < 0.8 else catalogue.WEEKDAYS[:6]
            availability = [
                {
                    "dayOfWeek": day,
                    "startMinute": start_hour * 60,
                    "endMinute": (start_hour + rng.choice([6, 8])) * 60,
                }
                for day in days
            ]
            created = self.stamp(400)
            doctors.append(
                with_name_index(
                    {
                        "_id": self.object_id(),
                        "givenName": rng.choice(catalogue.GIVEN_NAMES),
                        "familyName": rng.choice(catalogue.FAMILY_NAMES),
                        "specialty": specialty,
                        "availability": availability,
                        "acceptingNewPatients": rng.random() < 0.85,
                        "userId": None,
                        "createdAt": created,
                        "updatedAt": created,
                    }
                )
            )
        return doctors

    def patients(self) -> list[dict]:
        rng, patients = self.rng, []
        for _ in range(self.size.patients):
            given = rng.choice(catalogue.GIVEN_NAMES)
            family = rng.choice(catalogue.FAMILY_NAMES)
            born = self.anchor - timedelta(days=rng.randint(365 * 1, 365 * 95))
            created = self.stamp(rng.randint(200, 400))
            conditions = rng.sample(sorted(catalogue.CONDITIONS), k=rng.choice([0, 1, 1, 2, 3]))
            patients.append(
                with_name_index(
                    {
                        "_id": self.object_id(),
                        "givenName": given,
                        "familyName": family,
                        "birthDate": born.replace(hour=0, minute=0, second=0, microsecond=0),
                        "sex": rng.choice(["FEMALE", "MALE", "FEMALE", "MALE", "OTHER", "UNKNOWN"]),
                        "contact": {
                            "phone": f"+1 555 {rng.randint(100, 999)} {rng.randint(1000, 9999)}",
                            "email": _email(given, family, rng.randint(1, 999)),
                            "address": {
                                "line1": f"{rng.randint(1, 250)} {rng.choice(catalogue.STREETS)}",
                                "line2": None,
                                "city": rng.choice(catalogue.CITIES),
                                "postalCode": f"{rng.randint(10000, 99999)}",
                                "country": "US",
                            },
                        },
                        "conditions": conditions,
                        "allergies": rng.sample(catalogue.ALLERGIES, k=rng.choice([0, 0, 0, 1, 2])),
                        "userId": None,
                        "createdAt": created,
                        "updatedAt": created,
                    }
                )
            )
        return patients

    def appointments(self, patients: list[dict], doctors: list[dict]) -> list[dict]:
        """Non-overlapping per doctor, inside availability, about 6 months back and 5 weeks
        ahead; each patient mostly sees the doctors for their conditions."""
        rng = self.rng
        by_specialty: dict[str, list[dict]] = {}
        for doctor in doctors:
            by_specialty.setdefault(doctor["specialty"], []).append(doctor)
        taken: set[tuple[ObjectId, datetime]] = set()
        appointments: list[dict] = []
        attempts = 0
        while len(appointments) < self.size.appointments and attempts < self.size.appointments * 5:
            attempts += 1
            patient = rng.choice(patients)
            specialties = [catalogue.CONDITIONS[c][0] for c in patient["conditions"]]
            specialty = rng.choice(specialties or ["GENERAL_PRACTICE"])
            doctor = rng.choice(by_specialty.get(specialty) or doctors)
            day = self.anchor + timedelta(days=rng.randint(-182, 35))
            windows = [
                w
                for w in doctor["availability"]
                if w["dayOfWeek"] == catalogue.WEEKDAYS[day.weekday()]
            ]
            if not windows:
                continue
            window = windows[0]
            minute = window["startMinute"] + 30 * rng.randrange(
                (window["endMinute"] - window["startMinute"]) // 30
            )
            start = day + timedelta(minutes=minute)
            if (doctor["_id"], start) in taken:
                continue
            taken.add((doctor["_id"], start))
            duration = rng.choice([15, 30, 30])
            if start + timedelta(minutes=duration) <= self.as_of:
                status = COMPLETED if rng.random() < 0.85 else CANCELLED
            elif start >= self.as_of:
                status = SCHEDULED if rng.random() < 0.9 else CANCELLED
            else:
                continue  # under way right now: leave the present alone
            # What the visit is about: one of the patient's conditions, or a passing one.
            condition = rng.choice(patient["conditions"] or ACUTE_CONDITIONS)
            reason = (
                f"Follow-up: {condition}" if patient["conditions"] else f"Consultation: {condition}"
            )
            created = min(start - timedelta(days=rng.randint(1, 30)), self.as_of)
            document = {
                "_id": self.object_id(),
                "patientId": patient["_id"],
                "doctorId": doctor["_id"],
                "start": start,
                "durationMinutes": duration,
                "end": start + timedelta(minutes=duration),
                "reason": reason,
                "status": status,
                "createdAt": created,
                "updatedAt": created,
            }
            if status == CANCELLED:
                document.update(
                    cancellationReason=rng.choice(
                        ["Patient request", "Doctor unavailable", "Rescheduled"]
                    ),
                    cancelledAt=created,
                )
            elif status == COMPLETED:
                document.update(completedAt=document["end"], diagnosis=condition)
            appointments.append(document)
        return appointments

    def prescriptions(self, patients: list[dict], appointments: list[dict]) -> list[dict]:
        """Repeat courses for chronic conditions, from a doctor the patient has seen, plus
        short acute courses prescribed at some completed visits."""
        rng, prescriptions = self.rng, []
        seen_by: dict[ObjectId, list[ObjectId]] = {}
        for appointment in appointments:
            if appointment["status"] == COMPLETED:
                seen_by.setdefault(appointment["patientId"], []).append(appointment["doctorId"])
        for patient in patients:
            doctors = seen_by.get(patient["_id"])
            if not doctors:
                continue
            for condition in patient["conditions"]:
                for treatment in catalogue.CONDITIONS[condition][1]:
                    if rng.random() < 0.3:
                        continue
                    course_start = self.anchor - timedelta(days=rng.randint(30, 360))
                    while course_start < self.anchor:
                        days = rng.choice([30, 60, 90])
                        prescriptions.append(
                            self._prescription(
                                patient["_id"],
                                rng.choice(doctors),
                                condition,
                                treatment,
                                course_start,
                                days,
                            )
                        )
                        course_start += timedelta(days=days)
        acute = [
            (condition, treatment)
            for condition, (_, treatments) in catalogue.CONDITIONS.items()
            for treatment in treatments
            if treatment[3] in ("THREE_TIMES_DAILY", "AS_NEEDED")
        ]
        for appointment in appointments:
            if appointment["status"] == COMPLETED and rng.random() < 0.3:
                prescriptions.append(
                    self._prescription(
                        appointment["patientId"],
                        appointment["doctorId"],
                        *rng.choice(acute),
                        appointment["start"].replace(hour=0, minute=0),
                        rng.choice([5, 7, 10]),
                    )
                )
        return prescriptions

    def _prescription(
        self, patient_id, doctor_id, indication: str, treatment, start: datetime, days: int
    ) -> dict:
        drug, dose, unit, frequency, monthly = treatment
        end = start + timedelta(days=days)
        if self.rng.random() < 0.05:
            status = "STOPPED"
        else:
            status = "COMPLETED" if end < self.as_of else "ACTIVE"
        return {
            "_id": self.object_id(),
            "patientId": patient_id,
            "doctorId": doctor_id,
            "drug": drug,
            "indication": indication,
            "dosage": {"value": float(dose), "unit": unit},
            "frequency": frequency,
            "startDate": start,
            "endDate": end,
            "costCents": round(monthly * days / 30 * 100 * self.rng.uniform(0.9, 1.1)),
            "status": status,
            "createdAt": start,
            "updatedAt": start,
        }

    def bills(self, patients: list[dict], appointments: list[dict]) -> list[dict]:
        """One bill per completed visit, for what the visit diagnosed."""
        rng = self.rng
        rows = []
        for appointment in appointments:
            if appointment["status"] != COMPLETED:
                continue
            paid_at = (
                appointment["end"] + timedelta(days=rng.randint(1, 30))
                if rng.random() < 0.7
                else None
            )
            if paid_at is not None and paid_at > self.as_of:
                paid_at = None  # not paid yet: a bill is never paid in the future
            rows.append(
                {
                    "patient_id": str(appointment["patientId"]),
                    "appointment_id": str(appointment["_id"]),
                    "disease": appointment["diagnosis"],
                    "total_cost_cents": rng.randint(40, 600) * 100 + rng.choice([0, 50, 99]),
                    "created_at": appointment["end"],
                    "paid": paid_at is not None,
                    "paid_at": paid_at,
                }
            )
        return rows


def _email(given: str, family: str, number: int) -> str:
    local = f"{given}.{family}{number}".lower().replace("'", "")
    return f"{local}@example.org"


def _batches(items: list, size: int = BATCH) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def load_demo_data(
    services: Services,
    *,
    seed: int = 42,
    size: str = "default",
    anchor: date | None = None,
    progress: bool = True,
    accounts_dir: Path | None = None,
) -> dict[str, int]:
    generator = DemoGenerator(seed=seed, size=SIZES[size], anchor=anchor or default_anchor())
    doctors = generator.doctors()
    patients = generator.patients()
    appointments = generator.appointments(patients, doctors)
    prescriptions = generator.prescriptions(patients, appointments)
    bill_rows = generator.bills(patients, appointments)
    claims = [
        {"doctorId": a["doctorId"], "slot": slot, "appointmentId": a["_id"]}
        for a in appointments
        if a["status"] == SCHEDULED
        for slot in slots(a["start"], a["durationMinutes"])
    ]
    plan = [
        ("doctors", doctors),
        ("patients", patients),
        ("appointments", appointments),
        ("appointment_slots", claims),
        ("prescriptions", prescriptions),
    ]
    total = sum(len(items) for _, items in plan) + len(bill_rows)
    with tqdm(total=total, desc="demo data", unit="rec", disable=not progress) as bar:
        for collection, items in plan:
            for batch in _batches(items):
                await services.db[collection].insert_many(batch, ordered=False)
                bar.update(len(batch))
        for batch in _batches(bill_rows):
            async with services.engine.begin() as connection:
                await connection.execute(bills.insert(), batch)
            bar.update(len(batch))
    if accounts_dir is not None:
        await create_demo_accounts(services, appointments=appointments, data_dir=accounts_dir)
    # Written around the stores: tell the report cache, as every store write does.
    await services.report_cache.invalidate()
    counts = {name: len(items) for name, items in plan} | {"bills": len(bill_rows)}
    log.info("demo data loaded: %s", counts)
    return counts


async def load_demo_data_if_empty(services: Services, *, seed: int, size: str) -> bool:
    """First start loads the demo data; later starts keep whatever is there."""
    if await services.db["patients"].estimated_document_count() > 0:
        return False
    if await services.data_sources().billing.count() > 0:
        return False
    await load_demo_data(services, seed=seed, size=size, accounts_dir=services.settings.data_dir)
    return True
