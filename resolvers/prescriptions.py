from __future__ import annotations

from typing import Any

import strawberry

from datasources.ids import parse_id
from datasources.prescriptions import ACTIVE
from errors import Conflict
from resolvers.common import (
    Info,
    knowledge_base,
    list_connection,
    load_existing,
)
from schema import doctor as doctor_types
from schema import enums
from schema import patient as patient_types
from schema import prescription as types
from schema import validation as check
from schema.pagination import Connection


async def resolve_prescription(info: Info, id: strawberry.ID) -> types.Prescription | None:
    loader = info.context.loaders.prescription_by_id
    document = await load_existing(loader, parse_id(id), "Prescription", id)
    return types.Prescription.from_document(document)


async def resolve_prescriptions(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    patient_id: strawberry.ID | None = None,
    doctor_id: strawberry.ID | None = None,
    status: enums.PrescriptionStatus | None = None,
) -> Connection[types.Prescription]:
    return await list_connection(
        info,
        info.context.sources.prescriptions,
        types.Prescription.from_document,
        first,
        after,
        patient_id=parse_id(patient_id, field="patientId") if patient_id else None,
        doctor_id=parse_id(doctor_id, field="doctorId") if doctor_id else None,
        status=status.value if status else None,
    )


async def resolve_prescription_patient(root: Any, info: Info) -> patient_types.Patient:
    document = await load_existing(
        info.context.loaders.patient_by_id, root.patient_id, "Patient", str(root.patient_id)
    )
    return patient_types.Patient.from_document(document)


async def resolve_prescription_doctor(root: Any, info: Info) -> doctor_types.Doctor:
    document = await load_existing(
        info.context.loaders.doctor_by_id, root.doctor_id, "Doctor", str(root.doctor_id)
    )
    return doctor_types.Doctor.from_document(document)


async def resolve_create_prescription(
    info: Info, input: types.CreatePrescriptionInput
) -> types.Prescription:
    from resolvers.safety import create_prescription_or_raise

    # The medication safety check runs on every new prescription (resolvers/safety.py).
    document = await create_prescription_or_raise(info, input)
    return types.Prescription.from_document(document)


async def resolve_update_prescription(
    info: Info, id: strawberry.ID, input: types.UpdatePrescriptionInput
) -> types.Prescription:
    store = info.context.sources.prescriptions
    object_id, changes = parse_id(id), input.to_changes()
    current = await store.get(id=object_id)
    if not changes:
        return types.Prescription.from_document(current)
    if "status" in changes and changes["status"] != current["status"]:
        if current["status"] != ACTIVE:
            raise Conflict(
                f"a {current['status'].lower()} prescription cannot change status",
                currentStatus=current["status"],
            )
    if "drug" in changes:
        from knowledge.coding import code_drug

        changes["drugCode"] = code_drug(changes["drug"], knowledge_base(info))
    merged = {**current, **changes}
    check.date_range(
        merged["startDate"], merged.get("endDate"), start_field="startDate", end_field="endDate"
    )
    # Optimistic concurrency: the checks above hold only for the version we read.
    document = await store.update(
        id=object_id,
        changes=changes,
        expect={"updatedAt": current["updatedAt"], "status": current["status"]},
    )
    if document is None:
        raise Conflict("the prescription changed meanwhile; read it again and retry", id=id)
    return types.Prescription.from_document(document)


async def resolve_delete_prescription(info: Info, id: strawberry.ID) -> strawberry.ID:
    await info.context.sources.prescriptions.delete(id=parse_id(id))
    return id
