"""Prescriptions: a drug, a dose and a schedule for one patient, from one doctor."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from bson import ObjectId

from resolvers import prescriptions as resolve
from resolvers import safety
from schema import validation as check
from schema.enums import DosageUnit, Frequency, PrescriptionStatus
from schema.money import from_cents, money_cents
from schema.pagination import Connection

if TYPE_CHECKING:
    from datasources.documents import Document
    from schema.doctor import Doctor
    from schema.patient import Patient
    from schema.safety import (
        AlertOverride,
        DrugCoding,
        MedicationAlert,
        PrescriptionVerification,
    )

MAX_DOSE = 100_000.0


@strawberry.type
class Dosage:
    value: float
    unit: DosageUnit


@strawberry.input
class DosageInput:
    value: float
    unit: DosageUnit

    def to_document(self) -> Document:
        return {
            "value": check.positive_number(self.value, "dosage.value", maximum=MAX_DOSE),
            "unit": self.unit.value,
        }


@strawberry.type
class Prescription:
    id: strawberry.ID
    drug: str
    indication: str | None = strawberry.field(description="The condition this treats.")
    dosage: Dosage
    frequency: Frequency
    start_date: date
    end_date: date | None
    cost: Decimal
    status: PrescriptionStatus
    created_at: datetime
    updated_at: datetime
    object_id: strawberry.Private[ObjectId]
    patient_id: strawberry.Private[ObjectId]
    doctor_id: strawberry.Private[ObjectId]
    # The stored document, for the medication-safety fields (resolvers/safety.py).
    document: strawberry.Private[dict[str, Any]]

    patient: Annotated[Patient, strawberry.lazy("schema.patient")] = strawberry.field(
        resolver=resolve.resolve_prescription_patient
    )
    doctor: Annotated[Doctor, strawberry.lazy("schema.doctor")] = strawberry.field(
        resolver=resolve.resolve_prescription_doctor
    )
    drug_coding: Annotated[DrugCoding, strawberry.lazy("schema.safety")] = strawberry.field(
        resolver=safety.resolve_prescription_drug_coding,
        description="The drug as RxNorm ingredient and ATC code; coded: false when "
        "`drug` matched no term (kept verbatim, and reported by the safety check).",
    )
    verification: Annotated[PrescriptionVerification, strawberry.lazy("schema.safety")] | None = (
        strawberry.field(
            resolver=safety.resolve_prescription_verification,
            description="The pharmacist's review; null for records older than it.",
        )
    )
    overrides: list[Annotated[AlertOverride, strawberry.lazy("schema.safety")]] = strawberry.field(
        resolver=safety.resolve_prescription_overrides,
        description="Critical alerts the prescriber acknowledged, with their reasons.",
    )
    alerts: list[Annotated[MedicationAlert, strawberry.lazy("schema.safety")]] = strawberry.field(
        resolver=safety.resolve_prescription_alerts,
        description="Medication safety alerts against the patient's current record.",
    )

    @classmethod
    def from_document(cls, document: Document) -> Prescription:
        end = document.get("endDate")
        return cls(
            id=strawberry.ID(str(document["_id"])),
            object_id=document["_id"],
            patient_id=document["patientId"],
            doctor_id=document["doctorId"],
            drug=document["drug"],
            indication=document.get("indication"),
            dosage=Dosage(
                value=document["dosage"]["value"], unit=DosageUnit(document["dosage"]["unit"])
            ),
            frequency=Frequency(document["frequency"]),
            start_date=document["startDate"].date(),
            end_date=end.date() if end else None,
            cost=from_cents(document["costCents"]),
            status=PrescriptionStatus(document["status"]),
            created_at=document["createdAt"],
            updated_at=document["updatedAt"],
            document=document,
        )


@strawberry.input
class CreatePrescriptionInput:
    patient_id: strawberry.ID
    doctor_id: strawberry.ID
    drug: str
    dosage: DosageInput
    frequency: Frequency
    start_date: date
    end_date: date | None = None
    cost: Decimal = strawberry.field(description="Non-negative, at most two decimal places.")
    indication: str | None = strawberry.field(
        default=None, description="The condition this treats."
    )

    def to_document(self) -> Document:
        check.date_range(
            self.start_date, self.end_date, start_field="startDate", end_field="endDate"
        )
        return {
            "drug": check.text(self.drug, "drug", max_length=200),
            "indication": check.optional_text(self.indication, "indication", max_length=200),
            "dosage": self.dosage.to_document(),
            "frequency": self.frequency.value,
            "startDate": check.as_utc_midnight(self.start_date),
            "endDate": check.as_utc_midnight(self.end_date) if self.end_date else None,
            "costCents": money_cents(self.cost, "cost"),
            "status": PrescriptionStatus.ACTIVE.value,
        }


@strawberry.input(description="Only the fields given change. status may only leave ACTIVE.")
class UpdatePrescriptionInput:
    drug: strawberry.Maybe[str | None]
    dosage: strawberry.Maybe[DosageInput | None]
    frequency: strawberry.Maybe[Frequency | None]
    start_date: strawberry.Maybe[date | None]
    end_date: strawberry.Maybe[date | None]
    cost: strawberry.Maybe[Decimal | None]
    status: strawberry.Maybe[PrescriptionStatus | None]
    indication: strawberry.Maybe[str | None]

    def to_changes(self) -> Document:
        changes: Document = {}
        if self.drug:
            drug = check.not_null(self.drug, "drug")
            changes["drug"] = check.text(drug, "drug", max_length=200)
        if self.indication:
            changes["indication"] = check.optional_text(
                self.indication.value, "indication", max_length=200
            )
        if self.dosage:
            changes["dosage"] = check.not_null(self.dosage, "dosage").to_document()
        if self.frequency:
            changes["frequency"] = check.not_null(self.frequency, "frequency").value
        if self.start_date:
            start_date = check.not_null(self.start_date, "startDate")
            changes["startDate"] = check.as_utc_midnight(start_date)
        if self.end_date:
            end_date = self.end_date.value
            changes["endDate"] = check.as_utc_midnight(end_date) if end_date else None
        if self.cost:
            changes["costCents"] = money_cents(check.not_null(self.cost, "cost"), "cost")
        if self.status:
            changes["status"] = check.not_null(self.status, "status").value
        return changes


@strawberry.type
class PrescriptionQueries:
    prescription: Prescription | None = strawberry.field(resolver=resolve.resolve_prescription)
    prescriptions: Connection[Prescription] | None = strawberry.field(
        resolver=resolve.resolve_prescriptions
    )


@strawberry.type
class PrescriptionMutations:
    create_prescription: Prescription | None = strawberry.field(
        resolver=resolve.resolve_create_prescription,
        description="Refused with SAFETY_ALERT_NOT_ACKNOWLEDGED on a critical medication "
        "alert; `prescribe` returns the alerts as a typed result and takes acknowledgements.",
    )
    update_prescription: Prescription | None = strawberry.field(
        resolver=resolve.resolve_update_prescription
    )
    delete_prescription: strawberry.ID | None = strawberry.field(
        resolver=resolve.resolve_delete_prescription
    )
