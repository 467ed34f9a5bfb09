"""Appointments: who sees whom, when, and the lifecycle SCHEDULED -> COMPLETED | CANCELLED."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId

from datasources.appointments import SLOT_MINUTES
from errors import BadUserInput
from resolvers import appointments as resolve
from schema import validation as check
from schema.enums import AppointmentStatus
from schema.pagination import Connection

if TYPE_CHECKING:
    from datasources.documents import Document
    from schema.bill import Bill
    from schema.doctor import Doctor
    from schema.patient import Patient

MAX_DURATION_MINUTES = 8 * 60


@strawberry.type
class Appointment:
    id: strawberry.ID
    start: datetime
    duration_minutes: int
    end: datetime
    reason: str | None
    diagnosis: str | None = strawberry.field(
        description="The condition this visit diagnosed or treated (set by the clinician)."
    )
    status: AppointmentStatus
    cancellation_reason: str | None
    cancelled_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    object_id: strawberry.Private[ObjectId]
    patient_id: strawberry.Private[ObjectId]
    doctor_id: strawberry.Private[ObjectId]

    patient: Annotated[Patient, strawberry.lazy("schema.patient")] = strawberry.field(
        resolver=resolve.resolve_appointment_patient
    )
    doctor: Annotated[Doctor, strawberry.lazy("schema.doctor")] = strawberry.field(
        resolver=resolve.resolve_appointment_doctor
    )
    bill: Annotated[Bill, strawberry.lazy("schema.bill")] | None = strawberry.field(
        resolver=resolve.resolve_appointment_bill
    )

    @classmethod
    def from_document(cls, document: Document) -> Appointment:
        return cls(
            id=strawberry.ID(str(document["_id"])),
            object_id=document["_id"],
            patient_id=document["patientId"],
            doctor_id=document["doctorId"],
            start=document["start"],
            duration_minutes=document["durationMinutes"],
            end=document["end"],
            reason=document.get("reason"),
            diagnosis=document.get("diagnosis"),
            status=AppointmentStatus(document["status"]),
            cancellation_reason=document.get("cancellationReason"),
            cancelled_at=document.get("cancelledAt"),
            completed_at=document.get("completedAt"),
            created_at=document["createdAt"],
            updated_at=document["updatedAt"],
        )


def check_time(start: datetime, duration_minutes: int) -> None:
    if start <= datetime.now(UTC):
        raise BadUserInput("start must be in the future", field="start")
    if start.second or start.microsecond or start.minute % SLOT_MINUTES:
        raise BadUserInput(f"start must be on a {SLOT_MINUTES}-minute boundary", field="start")
    if not (SLOT_MINUTES <= duration_minutes <= MAX_DURATION_MINUTES) or (
        duration_minutes % SLOT_MINUTES
    ):
        raise BadUserInput(
            f"durationMinutes must be a multiple of {SLOT_MINUTES} "
            f"between {SLOT_MINUTES} and {MAX_DURATION_MINUTES}",
            field="durationMinutes",
        )


@strawberry.input
class CreateAppointmentInput:
    patient_id: strawberry.ID
    doctor_id: strawberry.ID
    start: datetime = strawberry.field(
        description=f"In the future, on a {SLOT_MINUTES}-minute boundary, inside one of the "
        "doctor's availability windows."
    )
    duration_minutes: int = 30
    reason: str | None = None

    def checked_reason(self) -> str | None:
        check_time(self.start, self.duration_minutes)
        return check.optional_text(self.reason, "reason", max_length=1000)


@strawberry.input(description="Only the fields given change.")
class UpdateAppointmentInput:
    reason: strawberry.Maybe[str | None]
    diagnosis: strawberry.Maybe[str | None]

    def to_changes(self) -> Document:
        changes: Document = {}
        if self.reason:
            changes["reason"] = check.optional_text(self.reason.value, "reason", max_length=1000)
        if self.diagnosis:
            changes["diagnosis"] = check.optional_text(
                self.diagnosis.value, "diagnosis", max_length=200
            )
        return changes


@strawberry.enum
class UnavailableReason(Enum):
    ALREADY_BOOKED = "ALREADY_BOOKED"
    OUTSIDE_AVAILABILITY = "OUTSIDE_AVAILABILITY"


@strawberry.type(description="The doctor cannot take the requested time; nothing was changed.")
class DoctorUnavailable:
    reason: UnavailableReason
    message: str


@strawberry.type(description="The appointment's status does not allow this change.")
class InvalidStatusTransition:
    current_status: AppointmentStatus
    requested_status: AppointmentStatus
    message: str


BookAppointmentResult = Annotated[
    Appointment | DoctorUnavailable, strawberry.union("BookAppointmentResult")
]
RescheduleAppointmentResult = Annotated[
    Appointment | DoctorUnavailable | InvalidStatusTransition,
    strawberry.union("RescheduleAppointmentResult"),
]
AppointmentStatusResult = Annotated[
    Appointment | InvalidStatusTransition, strawberry.union("AppointmentStatusResult")
]


@strawberry.type
class AppointmentQueries:
    appointment: Appointment | None = strawberry.field(resolver=resolve.resolve_appointment)
    appointments: Connection[Appointment] | None = strawberry.field(
        resolver=resolve.resolve_appointments
    )


@strawberry.type
class AppointmentMutations:
    create_appointment: BookAppointmentResult | None = strawberry.field(
        resolver=resolve.resolve_create_appointment,
        description="Books a time with a doctor. Overlapping bookings are impossible: the "
        "database refuses the second one, even when both arrive at once.",
    )
    update_appointment: Appointment | None = strawberry.field(
        resolver=resolve.resolve_update_appointment
    )
    reschedule_appointment: RescheduleAppointmentResult | None = strawberry.field(
        resolver=resolve.resolve_reschedule_appointment
    )
    cancel_appointment: AppointmentStatusResult | None = strawberry.field(
        resolver=resolve.resolve_cancel_appointment
    )
    complete_appointment: AppointmentStatusResult | None = strawberry.field(
        resolver=resolve.resolve_complete_appointment
    )
    delete_appointment: strawberry.ID | None = strawberry.field(
        resolver=resolve.resolve_delete_appointment,
        description="Removes a booking made in error. Refused (CONFLICT) once it is billed.",
    )
