from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import strawberry

from datasources.ids import parse_id
from errors import Conflict
from resolvers.common import (
    Info,
    children_connection,
    list_connection,
    load_existing,
    search_text,
    update_or_read,
)
from schema import appointment as appointment_types
from schema import doctor as types
from schema import enums
from schema.pagination import Connection


async def resolve_doctor(info: Info, id: strawberry.ID) -> types.Doctor | None:
    loader = info.context.loaders.doctor_by_id
    document = await load_existing(loader, parse_id(id), "Doctor", id)
    return types.Doctor.from_document(document)


async def resolve_doctors(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    name: str | None = None,
    specialty: enums.Specialty | None = None,
    available_on: Annotated[
        date | None,
        strawberry.argument(
            description="Only doctors with an availability window on that weekday."
        ),
    ] = None,
    accepting_new_patients: bool | None = None,
) -> Connection[types.Doctor]:
    return await list_connection(
        info,
        info.context.sources.doctors,
        types.Doctor.from_document,
        first,
        after,
        name=search_text(name),
        specialty=specialty.value if specialty else None,
        available_on=available_on,
        accepting_new_patients=accepting_new_patients,
    )


async def resolve_doctor_appointments(
    root: Any,
    info: Info,
    first: int | None = None,
    after: str | None = None,
    status: enums.AppointmentStatus | None = None,
    starts_from: datetime | None = None,
    starts_before: datetime | None = None,
) -> Connection[appointment_types.Appointment]:
    return await children_connection(
        info,
        info.context.loaders.appointments_by_doctor,
        info.context.sources.appointments,
        appointment_types.Appointment.from_document,
        ("doctor_id", root.object_id),
        first,
        after,
        status=status.value if status else None,
        starts_from=starts_from,
        starts_before=starts_before,
    )


async def resolve_create_doctor(info: Info, input: types.CreateDoctorInput) -> types.Doctor:
    document = await info.context.sources.doctors.insert(fields=input.to_document())
    return types.Doctor.from_document(document)


async def resolve_update_doctor(
    info: Info, id: strawberry.ID, input: types.UpdateDoctorInput
) -> types.Doctor:
    object_id, changes = parse_id(id), input.to_changes()
    document = await update_or_read(info.context.sources.doctors, object_id, changes)
    return types.Doctor.from_document(document)


async def resolve_delete_doctor(info: Info, id: strawberry.ID) -> strawberry.ID:
    sources = info.context.sources
    object_id = parse_id(id)
    await sources.doctors.get(id=object_id)
    if await sources.appointments.exists_for(
        field="doctorId", id=object_id
    ) or await sources.prescriptions.exists_for(field="doctorId", id=object_id):
        raise Conflict("the doctor has appointments or prescriptions", id=id)
    await sources.doctors.delete(id=object_id)
    return id
