"""Booking and the appointment lifecycle: the rules a scheduler must never break."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import BOOK, book, create_doctor, create_patient, future_slot, iso

CANCEL = """mutation($id: ID!, $reason: String!) { cancelAppointment(id: $id, reason: $reason) {
  __typename
  ... on Appointment { status cancellationReason cancelledAt }
  ... on InvalidStatusTransition { currentStatus requestedStatus message } } }"""
COMPLETE = """mutation($id: ID!) { completeAppointment(id: $id) {
  __typename
  ... on Appointment { status completedAt }
  ... on InvalidStatusTransition { currentStatus requestedStatus message } } }"""
RESCHEDULE = """mutation($id: ID!, $start: DateTime!, $duration: Int) {
  rescheduleAppointment(id: $id, start: $start, durationMinutes: $duration) {
  __typename
  ... on Appointment { start end status }
  ... on DoctorUnavailable { reason }
  ... on InvalidStatusTransition { currentStatus } } }"""


@pytest.fixture
async def people(client):
    return await create_patient(client), await create_doctor(client)


async def test_booking_returns_a_scheduled_appointment_with_its_end(client, people):
    patient, doctor = people
    start = future_slot()
    booked = await book(client, patient, doctor, start, duration=45)
    assert booked["__typename"] == "Appointment"
    assert booked["status"] == "SCHEDULED"
    assert booked["start"] == iso(start)
    assert booked["end"] == iso(start + timedelta(minutes=45))


@pytest.mark.parametrize(
    ("offset_minutes", "duration", "overlaps"),
    [
        (0, 30, True),  # same time
        (15, 30, True),  # starts inside
        (-15, 30, True),  # ends inside
        (-30, 120, True),  # covers it
        (30, 30, False),  # starts when the first ends
        (-30, 30, False),  # ends when the first starts
    ],
)
async def test_a_doctor_cannot_be_double_booked(client, people, offset_minutes, duration, overlaps):
    patient, doctor = people
    other_patient = await create_patient(client, givenName="Bob")
    start = future_slot(hour=10)
    assert (await book(client, patient, doctor, start))["__typename"] == "Appointment"
    second = await book(
        client, other_patient, doctor, start + timedelta(minutes=offset_minutes), duration
    )
    if overlaps:
        assert second == {
            "__typename": "DoctorUnavailable",
            "reason": "ALREADY_BOOKED",
            "message": second["message"],
        }
    else:
        assert second["__typename"] == "Appointment"


async def test_concurrent_overlapping_bookings_only_one_wins(client, people, services):
    patient, doctor = people
    start = future_slot(hour=14)
    # Starts 0..25 minutes apart with 30-minute durations: every pair overlaps.
    attempts = [
        book(client, patient, doctor, start + timedelta(minutes=5 * (i % 6))) for i in range(12)
    ]
    results = await asyncio.gather(*attempts)
    winners = [r for r in results if r["__typename"] == "Appointment"]
    assert len(winners) == 1
    assert all(r["reason"] == "ALREADY_BOOKED" for r in results if r not in winners)
    # Losers left nothing behind: one appointment, and only its six slot claims.
    assert await services.db.appointments.count_documents({}) == 1
    assert await services.db.appointment_slots.count_documents({}) == 6


async def test_other_doctors_are_not_blocked(client, people):
    patient, doctor = people
    colleague = await create_doctor(client, givenName="Lisa", familyName="Cuddy")
    start = future_slot()
    assert (await book(client, patient, doctor, start))["__typename"] == "Appointment"
    assert (await book(client, patient, colleague, start))["__typename"] == "Appointment"


async def test_booking_outside_weekly_availability_is_refused(client):
    patient = await create_patient(client)
    doctor = await create_doctor(
        client, availability=[{"dayOfWeek": "MONDAY", "startTime": "09:00", "endTime": "12:00"}]
    )
    today = datetime.now(UTC).date()
    next_monday = today + timedelta(days=7 - today.weekday())
    inside = datetime(next_monday.year, next_monday.month, next_monday.day, 9, tzinfo=UTC)
    assert (await book(client, patient, doctor, inside))["__typename"] == "Appointment"
    for start, duration in [
        (inside + timedelta(hours=3), 30),  # after the window
        (inside + timedelta(hours=2, minutes=45), 30),  # runs past it
        (inside + timedelta(days=1), 30),
    ]:  # Tuesday
        refused = await book(client, patient, doctor, start, duration)
        assert refused["reason"] == "OUTSIDE_AVAILABILITY"


async def test_cancelling_frees_the_time_and_cannot_be_undone(client, people, services):
    patient, doctor = people
    start = future_slot()
    appointment = await book(client, patient, doctor, start)
    cancelled = (await client.data(CANCEL, {"id": appointment["id"], "reason": "Patient request"}))[
        "cancelAppointment"
    ]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["cancellationReason"] == "Patient request"
    assert await services.db.appointment_slots.count_documents({}) == 0

    again = await client.data(CANCEL, {"id": appointment["id"], "reason": "x"})
    assert again["cancelAppointment"]["__typename"] == "InvalidStatusTransition"
    completed = (await client.data(COMPLETE, {"id": appointment["id"]}))["completeAppointment"]
    assert completed == {
        "__typename": "InvalidStatusTransition",
        "currentStatus": "CANCELLED",
        "requestedStatus": "COMPLETED",
        "message": completed["message"],
    }
    rescheduled = await client.data(
        RESCHEDULE, {"id": appointment["id"], "start": iso(start + timedelta(days=1))}
    )
    assert rescheduled["rescheduleAppointment"]["__typename"] == "InvalidStatusTransition"

    # The freed time can be booked again.
    assert (await book(client, patient, doctor, start))["__typename"] == "Appointment"


async def test_a_future_appointment_cannot_be_completed(client, people):
    patient, doctor = people
    appointment = await book(client, patient, doctor, future_slot())
    result = (await client.data(COMPLETE, {"id": appointment["id"]}))["completeAppointment"]
    assert result["__typename"] == "InvalidStatusTransition"
    assert "before it starts" in result["message"]


async def test_a_started_appointment_can_be_completed_once(client, people, services):
    patient, doctor = people
    appointment = await book(client, patient, doctor, future_slot())
    # Move it into the past directly: the API rightly refuses to book there.
    from bson import ObjectId

    await services.db.appointments.update_one(
        {"_id": ObjectId(appointment["id"])},
        {"$set": {"start": datetime.now(UTC) - timedelta(hours=1)}},
    )
    done = (await client.data(COMPLETE, {"id": appointment["id"]}))["completeAppointment"]
    assert done["status"] == "COMPLETED" and done["completedAt"]
    again = (await client.data(COMPLETE, {"id": appointment["id"]}))["completeAppointment"]
    assert again["__typename"] == "InvalidStatusTransition"
    assert again["message"] == "the appointment is already completed"


async def test_rescheduling_moves_the_claim(client, people):
    patient, doctor = people
    other = await create_patient(client, givenName="Eve")
    first_time, second_time = future_slot(hour=9), future_slot(hour=11)
    appointment = await book(client, patient, doctor, first_time)
    moved = await client.data(RESCHEDULE, {"id": appointment["id"], "start": iso(second_time)})
    assert moved["rescheduleAppointment"]["start"] == iso(second_time)
    # The old time is free, the new one taken.
    assert (await book(client, other, doctor, first_time))["__typename"] == "Appointment"
    assert (await book(client, other, doctor, second_time))["reason"] == "ALREADY_BOOKED"


async def test_rescheduling_onto_a_booked_time_changes_nothing(client, people):
    patient, doctor = people
    a = await book(client, patient, doctor, future_slot(hour=9))
    await book(client, patient, doctor, future_slot(hour=10))
    refused = await client.data(RESCHEDULE, {"id": a["id"], "start": iso(future_slot(hour=10))})
    assert refused["rescheduleAppointment"]["reason"] == "ALREADY_BOOKED"
    still = await client.data("query($id: ID!) { appointment(id: $id) { start } }", {"id": a["id"]})
    assert still["appointment"]["start"] == iso(future_slot(hour=9))
    # Its own old time is still claimed by it.
    other = await create_patient(client, givenName="Eve")
    assert (await book(client, other, doctor, future_slot(hour=9)))["reason"] == "ALREADY_BOOKED"


async def test_deleting_an_appointment_releases_its_time(client, people, services):
    patient, doctor = people
    appointment = await book(client, patient, doctor, future_slot())
    deleted = await client.data(
        "mutation($id: ID!) { deleteAppointment(id: $id) }", {"id": appointment["id"]}
    )
    assert deleted["deleteAppointment"] == appointment["id"]
    assert await services.db.appointment_slots.count_documents({}) == 0


async def test_booking_mutation_names_its_input_errors(client, people):
    patient, doctor = people
    error = await client.error(
        BOOK,
        {
            "input": {
                "patientId": patient["id"],
                "doctorId": doctor["id"],
                "start": iso(future_slot(minute=7)),
                "durationMinutes": 30,
            }
        },
    )
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "start"}
