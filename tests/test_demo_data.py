"""Demo data is deterministic for a seed and anchor, and obeys the domain's own rules."""

from __future__ import annotations

from datetime import date, timedelta

from demo.generator import SIZES, DemoGenerator

ANCHOR = date(2026, 3, 2)


def _generate(seed: int) -> dict[str, list]:
    generator = DemoGenerator(seed=seed, size=SIZES["small"], anchor=ANCHOR)
    doctors = generator.doctors()
    patients = generator.patients()
    appointments = generator.appointments(patients, doctors)
    return {
        "doctors": doctors,
        "patients": patients,
        "appointments": appointments,
        "prescriptions": generator.prescriptions(patients, appointments),
        "bills": generator.bills(patients, appointments),
    }


def test_same_seed_same_data_other_seed_other_data():
    assert _generate(3) == _generate(3)
    assert _generate(3)["patients"] != _generate(4)["patients"]


def test_no_doctor_is_double_booked_and_every_visit_fits_availability():
    from datasources.appointments import fits_availability

    data = _generate(5)
    doctors = {d["_id"]: d for d in data["doctors"]}
    by_doctor: dict = {}
    for appointment in data["appointments"]:
        if appointment["status"] == "CANCELLED":
            continue
        assert fits_availability(
            doctors[appointment["doctorId"]], appointment["start"], appointment["durationMinutes"]
        )
        by_doctor.setdefault(appointment["doctorId"], []).append(appointment)
    for appointments in by_doctor.values():
        appointments.sort(key=lambda a: a["start"])
        for before, after in zip(appointments, appointments[1:], strict=False):
            assert before["start"] + timedelta(minutes=before["durationMinutes"]) <= after["start"]


def test_bills_belong_to_completed_appointments_of_the_same_patient():
    data = _generate(6)
    appointments = {str(a["_id"]): a for a in data["appointments"]}
    assert data["bills"]
    for bill in data["bills"]:
        appointment = appointments[bill["appointment_id"]]
        assert appointment["status"] == "COMPLETED"
        assert bill["patient_id"] == str(appointment["patientId"])
        assert bill["total_cost_cents"] >= 0


def test_no_bill_is_paid_in_the_future():
    """Paid dates fall between the visit and the data's "now" (the anchor): 130 demo
    bills used to be paid after today."""
    generator = DemoGenerator(seed=6, size=SIZES["small"], anchor=ANCHOR)
    appointments = generator.appointments(generator.patients(), generator.doctors())
    bills = generator.bills([], appointments)
    paid = [bill for bill in bills if bill["paid"]]
    assert paid and len(paid) < len(bills)
    by_id = {str(a["_id"]): a for a in appointments}
    for bill in bills:
        assert bill["paid"] == (bill["paid_at"] is not None)
        if bill["paid"]:
            assert by_id[bill["appointment_id"]]["end"] < bill["paid_at"] <= generator.as_of


def test_prescriptions_come_from_doctors_the_patient_has_seen():
    data = _generate(8)
    seen = {
        (a["patientId"], a["doctorId"]) for a in data["appointments"] if a["status"] == "COMPLETED"
    }
    assert data["prescriptions"]
    for prescription in data["prescriptions"]:
        assert (prescription["patientId"], prescription["doctorId"]) in seen
        assert (
            prescription["endDate"] is None or prescription["endDate"] >= prescription["startDate"]
        )


def test_the_wall_clock_does_not_change_the_data(monkeypatch):
    """Statuses are decided as of the anchor: thirteen hours later, the same data."""
    from datetime import datetime, timedelta

    import demo.generator

    before = _generate(9)

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(hours=13)

    monkeypatch.setattr(demo.generator, "datetime", Later)
    assert _generate(9) == before
