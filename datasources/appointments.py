"""Appointments, their lifecycle, and the slot claims that make double-booking impossible.

Every scheduled appointment claims one `appointment_slots` row per 5-minute slot it
covers; a unique index on (doctorId, slot) means two overlapping bookings cannot both
commit, however the requests interleave. Claims and the appointment change together
in one transaction, so a failed booking leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from datasources.documents import Document, DocumentStore, utcnow
from datasources.people import WEEKDAYS
from datasources.transactions import run_transaction

SLOT_MINUTES = 5
SCHEDULED, COMPLETED, CANCELLED = "SCHEDULED", "COMPLETED", "CANCELLED"
# The lifecycle: only a scheduled appointment can change, and never back.
ALLOWED_TRANSITIONS = {SCHEDULED: {COMPLETED, CANCELLED}, COMPLETED: set(), CANCELLED: set()}

T = TypeVar("T")


class SchedulingConflict(Exception):
    """The doctor is already booked for part of the requested time."""


class OutsideAvailability(Exception):
    """The requested time is outside the doctor's weekly availability."""


class InvalidTransition(Exception):
    def __init__(self, current: str, requested: str, reason: str) -> None:
        super().__init__(reason)
        self.current, self.requested, self.reason = current, requested, reason


def slots(start: datetime, duration_minutes: int) -> list[datetime]:
    return [start + timedelta(minutes=m) for m in range(0, duration_minutes, SLOT_MINUTES)]


def fits_availability(doctor: Document, start: datetime, duration_minutes: int) -> bool:
    """Within one of the doctor's weekly windows (UTC minutes from midnight)."""
    weekday = WEEKDAYS[start.weekday()]
    first = start.hour * 60 + start.minute
    last = first + duration_minutes
    return any(
        window["dayOfWeek"] == weekday
        and window["startMinute"] <= first
        and last <= window["endMinute"]
        for window in doctor.get("availability", [])
    )


def _is_duplicate_key(error: Exception) -> bool:
    if isinstance(error, DuplicateKeyError):
        return True
    if isinstance(error, BulkWriteError):
        return any(e.get("code") == 11000 for e in error.details.get("writeErrors", []))
    return False


class AppointmentStore(DocumentStore):
    collection_name = "appointments"
    entity = "Appointment"
    default_sort = (("start", 1), ("_id", 1))
    sort_types = (datetime, ObjectId)
    windowed = True

    @property
    def slot_claims(self) -> AsyncCollection[Document]:
        return self.db["appointment_slots"]

    async def _in_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        # Not session.with_transaction: its retries ignore the request's time budget.
        result = await run_transaction(self.db.client, work)
        await self._changed()  # after the commit, never inside the transaction
        return result

    async def _claim(
        self,
        session: AsyncClientSession,
        appointment_id: ObjectId,
        doctor_id: ObjectId,
        start: datetime,
        duration: int,
    ) -> None:
        claims = [
            {"doctorId": doctor_id, "slot": slot, "appointmentId": appointment_id}
            for slot in slots(start, duration)
        ]
        try:
            await self.slot_claims.insert_many(claims, session=session)
        except (DuplicateKeyError, BulkWriteError) as error:
            if _is_duplicate_key(error):
                raise SchedulingConflict() from None
            raise

    async def book(self, *, doctor: Document, fields: Document) -> Document:
        start, duration = fields["start"], fields["durationMinutes"]
        if not fits_availability(doctor, start, duration):
            raise OutsideAvailability()

        async def work(session: AsyncClientSession) -> Document:
            document = await self.insert(
                fields={
                    **fields,
                    "doctorId": doctor["_id"],
                    "status": SCHEDULED,
                    "end": start + timedelta(minutes=duration),
                },
                session=session,
            )
            await self._claim(session, document["_id"], doctor["_id"], start, duration)
            return document

        return await self._in_transaction(work)

    async def reschedule(
        self, *, appointment: Document, doctor: Document, start: datetime, duration: int
    ) -> Document:
        if appointment["status"] != SCHEDULED:
            raise InvalidTransition(
                appointment["status"], SCHEDULED, "only a scheduled appointment can be rescheduled"
            )
        if not fits_availability(doctor, start, duration):
            raise OutsideAvailability()

        async def work(session: AsyncClientSession) -> Document:
            await self.slot_claims.delete_many(
                {"appointmentId": appointment["_id"]}, session=session
            )
            await self._claim(session, appointment["_id"], doctor["_id"], start, duration)
            updated = await self.update(
                id=appointment["_id"],
                changes={
                    "start": start,
                    "durationMinutes": duration,
                    "end": start + timedelta(minutes=duration),
                },
                expect={"status": SCHEDULED},
                session=session,
            )
            if updated is None:  # cancelled or completed meanwhile
                raise InvalidTransition(CANCELLED, SCHEDULED, "the appointment changed meanwhile")
            return updated

        return await self._in_transaction(work)

    async def transition(
        self,
        *,
        id: ObjectId,
        to: str,
        cancellation_reason: str | None = None,
        diagnosis: str | None = None,
    ) -> Document:
        now = utcnow()
        expect: Document = {
            "status": {"$in": [s for s, nxt in ALLOWED_TRANSITIONS.items() if to in nxt]}
        }
        changes: Document = {"status": to}
        if to == COMPLETED:
            expect["start"] = {"$lte": now}  # no completing an appointment in the future
            changes["completedAt"] = now
            if diagnosis is not None:
                changes["diagnosis"] = diagnosis
        elif to == CANCELLED:
            changes.update(cancelledAt=now, cancellationReason=cancellation_reason)

        async def work(session: AsyncClientSession) -> Document:
            updated = await self.update(id=id, changes=changes, expect=expect, session=session)
            if updated is None:
                current = await self.get(id=id, session=session)  # raises NotFound
                raise InvalidTransition(current["status"], to, self._refusal(current, to, now))
            if to == CANCELLED:
                # A cancelled appointment frees its time for other patients.
                await self.slot_claims.delete_many({"appointmentId": id}, session=session)
            return updated

        return await self._in_transaction(work)

    @staticmethod
    def _refusal(current: Document, to: str, now: datetime) -> str:
        if current["status"] == to:
            return f"the appointment is already {to.lower()}"
        if current["status"] != SCHEDULED:
            return f"a {current['status'].lower()} appointment cannot become {to.lower()}"
        if to == COMPLETED and current["start"] > now:
            return "an appointment cannot be completed before it starts"
        return f"cannot change {current['status'].lower()} to {to.lower()}"

    async def remove(self, *, id: ObjectId) -> Document:
        async def work(session: AsyncClientSession) -> Document:
            document = await self.delete(id=id, session=session)
            await self.slot_claims.delete_many({"appointmentId": id}, session=session)
            return document

        return await self._in_transaction(work)

    @staticmethod
    def search_filter(**criteria: Any) -> Document:
        return appointment_filter(**criteria)

    async def exists_for(self, *, field: str, id: ObjectId) -> bool:
        # Unscoped on purpose: "may this record be deleted?" must see every dependant.
        return await self.collection.find_one({field: id}, projection={"_id": 1}) is not None


def appointment_filter(
    *,
    doctor_id: ObjectId | None = None,
    patient_id: ObjectId | None = None,
    status: str | None = None,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
) -> Document:
    filter: Document = {}
    if doctor_id is not None:
        filter["doctorId"] = doctor_id
    if patient_id is not None:
        filter["patientId"] = patient_id
    if status is not None:
        filter["status"] = status
    if starts_from is not None or starts_before is not None:
        filter["start"] = {}
        if starts_from is not None:
            filter["start"]["$gte"] = starts_from
        if starts_before is not None:
            filter["start"]["$lt"] = starts_before
    return filter
