from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry

from datasources.ids import parse_id
from errors import Conflict
from knowledge.coding import code_patient_fields
from resolvers.common import (
    Info,
    children_connection,
    knowledge_base,
    list_connection,
    load_existing,
    page_request,
    search_text,
    update_or_read,
)
from schema import appointment as appointment_types
from schema import bill as bill_types
from schema import enums
from schema import patient as types
from schema import prescription as prescription_types
from schema.pagination import Connection, connection


async def resolve_patient(info: Info, id: strawberry.ID) -> types.Patient | None:
    loader = info.context.loaders.patient_by_id
    document = await load_existing(loader, parse_id(id), "Patient", id)
    return types.Patient.from_document(document)


async def resolve_patients(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    name: Annotated[
        str | None,
        strawberry.argument(
            description="Every word must start a word of the name (accents ignored)."
        ),
    ] = None,
) -> Connection[types.Patient]:
    return await list_connection(
        info,
        info.context.sources.patients,
        types.Patient.from_document,
        first,
        after,
        name=search_text(name),
    )


async def resolve_patient_appointments(
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
        info.context.loaders.appointments_by_patient,
        info.context.sources.appointments,
        appointment_types.Appointment.from_document,
        ("patient_id", root.object_id),
        first,
        after,
        status=status.value if status else None,
        starts_from=starts_from,
        starts_before=starts_before,
    )


async def resolve_patient_prescriptions(
    root: Any,
    info: Info,
    first: int | None = None,
    after: str | None = None,
    status: enums.PrescriptionStatus | None = None,
) -> Connection[prescription_types.Prescription]:
    return await children_connection(
        info,
        info.context.loaders.prescriptions_by_patient,
        info.context.sources.prescriptions,
        prescription_types.Prescription.from_document,
        ("patient_id", root.object_id),
        first,
        after,
        status=status.value if status else None,
    )


async def resolve_patient_bills(
    root: Any, info: Info, first: int | None = None, after: str | None = None
) -> Connection[bill_types.Bill]:
    request = page_request(info, first, after)
    page = await info.context.loaders.bills_by_patient.load((str(root.object_id), request, ()))
    counts = info.context.loaders.bill_counts_by_patient
    return connection(
        page, bill_types.Bill.from_row, counter=lambda: counts.load((str(root.object_id), ()))
    )


async def resolve_create_patient(info: Info, input: types.CreatePatientInput) -> types.Patient:
    fields = code_patient_fields(input.to_document(), knowledge_base(info))
    document = await info.context.sources.patients.insert(fields=fields)
    return types.Patient.from_document(document)


async def resolve_update_patient(
    info: Info, id: strawberry.ID, input: types.UpdatePatientInput
) -> types.Patient:
    object_id, changes = parse_id(id), input.to_changes()
    # Free-text conditions and allergies get their codes beside them (knowledge/coding.py).
    changes = code_patient_fields(changes, knowledge_base(info))
    document = await update_or_read(info.context.sources.patients, object_id, changes)
    return types.Patient.from_document(document)


async def resolve_delete_patient(info: Info, id: strawberry.ID) -> strawberry.ID:
    sources = info.context.sources
    object_id = parse_id(id)
    await sources.patients.get(id=object_id)
    if (
        await sources.appointments.exists_for(field="patientId", id=object_id)
        or await sources.prescriptions.exists_for(field="patientId", id=object_id)
        or await sources.billing.exists_for(column="patient_id", value=str(object_id))
    ):
        raise Conflict("the patient has appointments, prescriptions or bills", id=id)
    await sources.patients.delete(id=object_id)
    return id
