from __future__ import annotations

import re
from typing import Any

import strawberry

from datasources.ids import parse_id
from errors import BadUserInput
from resolvers.common import Info, load_existing, page_request
from schema import appointment as appointment_types
from schema import bill as types
from schema import patient as patient_types
from schema.pagination import Connection, connection

_BILL_ID = re.compile(r"[0-9]{1,18}")


def _bill_id(value: str) -> int:
    # Not str.isdigit(): it accepts digits such as "²" that int() refuses.
    if not _BILL_ID.fullmatch(value):
        raise BadUserInput(f"id {value!r} is not a valid bill id", field="id")
    return int(value)


async def resolve_bill(info: Info, id: strawberry.ID) -> types.Bill | None:
    row = await load_existing(info.context.loaders.bill_by_id, _bill_id(id), "Bill", id)
    return types.Bill.from_row(row)


async def resolve_bills(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    patient_id: strawberry.ID | None = None,
    paid: bool | None = None,
) -> Connection[types.Bill]:
    billing = info.context.sources.billing
    patient = str(parse_id(patient_id, field="patientId")) if patient_id else None
    page = await billing.page(
        request=page_request(info, first, after), patient_id=patient, paid=paid
    )
    return connection(
        page, types.Bill.from_row, counter=lambda: billing.count(patient_id=patient, paid=paid)
    )


async def resolve_bill_patient(root: Any, info: Info) -> patient_types.Patient:
    document = await load_existing(
        info.context.loaders.patient_by_id, parse_id(root.patient_id), "Patient", root.patient_id
    )
    return patient_types.Patient.from_document(document)


async def resolve_bill_appointment(root: Any, info: Info) -> appointment_types.Appointment | None:
    if root.appointment_id is None:
        return None
    document = await info.context.loaders.appointment_by_id.load(parse_id(root.appointment_id))
    return appointment_types.Appointment.from_document(document) if document else None


async def resolve_create_bill(info: Info, input: types.CreateBillInput) -> types.Bill:
    row = input.to_row()
    loaders = info.context.loaders
    patient_id = parse_id(input.patient_id, field="patientId")
    await load_existing(loaders.patient_by_id, patient_id, "Patient", input.patient_id)
    appointment_id = None
    if input.appointment_id is not None:
        appointment_id = parse_id(input.appointment_id, field="appointmentId")
        appointment = await load_existing(
            loaders.appointment_by_id, appointment_id, "Appointment", input.appointment_id
        )
        if appointment["patientId"] != patient_id:
            raise BadUserInput("the appointment belongs to another patient", field="appointmentId")
    created = await info.context.sources.billing.create(
        fields={
            **row,
            "patient_id": str(patient_id),
            "appointment_id": str(appointment_id) if appointment_id else None,
        }
    )
    return types.Bill.from_row(created)


async def resolve_update_bill(
    info: Info, id: strawberry.ID, input: types.UpdateBillInput
) -> types.Bill:
    billing, bill_id, changes = info.context.sources.billing, _bill_id(id), input.to_changes()
    row = await (
        billing.update(id=bill_id, changes=changes) if changes else billing.get(id=bill_id)
    )
    return types.Bill.from_row(row)


async def resolve_delete_bill(info: Info, id: strawberry.ID) -> strawberry.ID:
    await info.context.sources.billing.delete(id=_bill_id(id))
    return id
