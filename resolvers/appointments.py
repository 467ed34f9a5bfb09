from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from datasources.appointments import (
    InvalidTransition,
    OutsideAvailability,
    SchedulingConflict,
)
from datasources.ids import parse_id
from errors import Conflict
from resolvers.common import (
    Info,
    list_connection,
    load_existing,
    update_or_read,
)
from schema import appointment as types
from schema import bill as bill_types
from schema import doctor as doctor_types
from schema import enums
from schema import patient as patient_types
from schema import validation as check
from schema.pagination import Connection


async def resolve_appointment(info: Info, id: strawberry.ID) -> types.Appointment | None:
    loader = info.context.loaders.appointment_by_id
    document = await load_existing(loader, parse_id(id), "Appointment", id)
    return types.Appointment.from_document(document)


async def resolve_appointments(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    doctor_id: strawberry.ID | None = None,
    patient_id: strawberry.ID | None = None,
    status: enums.AppointmentStatus | None = None,
    starts_from: Annotated[
        datetime | None,
        strawberry.argument(description="Appointments starting at or after this time."),
    ] = None,
    starts_before: Annotated[
        datetime | None, strawberry.argument(description="Appointments starting before this time.")
    ] = None,
) -> Connection[types.Appointment]:
    check.date_range(starts_from, starts_before, start_field="startsFrom", end_field="startsBefore")
    return await list_connection(
        info,
        info.context.sources.appointments,
        types.Appointment.from_document,
        first,
        after,
        doctor_id=parse_id(doctor_id, field="doctorId") if doctor_id else None,
        patient_id=parse_id(patient_id, field="patientId") if patient_id else None,
        status=status.value if status else None,
        starts_from=starts_from,
        starts_before=starts_before,
    )


async def resolve_appointment_patient(root: Any, info: Info) -> patient_types.Patient:
    document = await load_existing(
        info.context.loaders.patient_by_id, root.patient_id, "Patient", str(root.patient_id)
    )
    return patient_types.Patient.from_document(document)


async def resolve_appointment_doctor(root: Any, info: Info) -> doctor_types.Doctor:
    document = await load_existing(
        info.context.loaders.doctor_by_id, root.doctor_id, "Doctor", str(root.doctor_id)
    )
    return doctor_types.Doctor.from_document(document)


async def resolve_appointment_bill(root: Any, info: Info) -> bill_types.Bill | None:
    row = await info.context.loaders.bill_by_appointment_id.load(str(root.object_id))
    return bill_types.Bill.from_row(row) if row else None


def _unavailable(error: Exception) -> types.DoctorUnavailable:
    if isinstance(error, SchedulingConflict):
        return types.DoctorUnavailable(
            reason=types.UnavailableReason.ALREADY_BOOKED,
            message="the doctor already has an appointment at part of that time",
        )
    return types.DoctorUnavailable(
        reason=types.UnavailableReason.OUTSIDE_AVAILABILITY,
        message="that time is outside the doctor's weekly availability",
    )


def _invalid(error: InvalidTransition) -> types.InvalidStatusTransition:
    return types.InvalidStatusTransition(
        current_status=enums.AppointmentStatus(error.current),
        requested_status=enums.AppointmentStatus(error.requested),
        message=error.reason,
    )


async def resolve_create_appointment(
    info: Info, input: types.CreateAppointmentInput
) -> types.BookAppointmentResult:
    reason = input.checked_reason()
    patient_id = parse_id(input.patient_id, field="patientId")
    doctor_id = parse_id(input.doctor_id, field="doctorId")
    loaders = info.context.loaders
    await load_existing(loaders.patient_by_id, patient_id, "Patient", input.patient_id)
    doctor = await load_existing(loaders.doctor_by_id, doctor_id, "Doctor", input.doctor_id)
    try:
        document = await info.context.sources.appointments.book(
            doctor=doctor,
            fields={
                "patientId": patient_id,
                "start": input.start,
                "durationMinutes": input.duration_minutes,
                "reason": reason,
            },
        )
    except (SchedulingConflict, OutsideAvailability) as error:
        return _unavailable(error)
    return types.Appointment.from_document(document)


async def resolve_reschedule_appointment(
    info: Info, id: strawberry.ID, start: datetime, duration_minutes: int | None = None
) -> types.RescheduleAppointmentResult:
    store = info.context.sources.appointments
    appointment = await store.get(id=parse_id(id))
    duration = appointment["durationMinutes"] if duration_minutes is None else duration_minutes
    types.check_time(start, duration)
    doctor = await info.context.sources.doctors.get(id=appointment["doctorId"])
    try:
        document = await store.reschedule(
            appointment=appointment, doctor=doctor, start=start, duration=duration
        )
    except (SchedulingConflict, OutsideAvailability) as error:
        return _unavailable(error)
    except InvalidTransition as error:
        return _invalid(error)
    return types.Appointment.from_document(document)


async def _transition(
    info: Info, id: strawberry.ID, to: str, reason: str | None = None, diagnosis: str | None = None
) -> types.AppointmentStatusResult:
    try:
        document = await info.context.sources.appointments.transition(
            id=parse_id(id), to=to, cancellation_reason=reason, diagnosis=diagnosis
        )
    except InvalidTransition as error:
        return _invalid(error)
    return types.Appointment.from_document(document)


async def resolve_cancel_appointment(
    info: Info, id: strawberry.ID, reason: str
) -> types.AppointmentStatusResult:
    reason = check.text(reason, "reason", max_length=1000)
    return await _transition(info, id, enums.AppointmentStatus.CANCELLED.value, reason)


async def resolve_complete_appointment(
    info: Info,
    id: strawberry.ID,
    diagnosis: Annotated[
        str | None,
        strawberry.argument(description="The condition diagnosed or treated at this visit."),
    ] = None,
) -> types.AppointmentStatusResult:
    diagnosis = check.optional_text(diagnosis, "diagnosis", max_length=200)
    return await _transition(info, id, enums.AppointmentStatus.COMPLETED.value, diagnosis=diagnosis)


async def resolve_update_appointment(
    info: Info, id: strawberry.ID, input: types.UpdateAppointmentInput
) -> types.Appointment:
    object_id, changes = parse_id(id), input.to_changes()
    document = await update_or_read(info.context.sources.appointments, object_id, changes)
    return types.Appointment.from_document(document)


async def resolve_delete_appointment(info: Info, id: strawberry.ID) -> strawberry.ID:
    sources = info.context.sources
    object_id = parse_id(id)
    await sources.appointments.get(id=object_id)
    if await sources.billing.exists_for(column="appointment_id", value=str(object_id)):
        raise Conflict("the appointment has a bill", id=id)
    await sources.appointments.remove(id=object_id)
    return id
