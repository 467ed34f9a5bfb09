"""Medication safety in the API: alerts, coded clinical data, the pharmacist's review,
and the knowledge base's identity."""

from __future__ import annotations

from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from schema import validation as check
from schema.enums import Frequency

if TYPE_CHECKING:
    from schema.prescription import DosageInput, Prescription

Document = dict[str, Any]


@strawberry.enum
class AlertKind(Enum):
    ALLERGY = "ALLERGY"
    INTERACTION = "INTERACTION"
    CONTRAINDICATION = "CONTRAINDICATION"
    DUPLICATE_THERAPY = "DUPLICATE_THERAPY"
    DOSE_RANGE = "DOSE_RANGE"
    UNCODED_ENTRY = "UNCODED_ENTRY"


@strawberry.enum
class AlertSeverity(Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@strawberry.enum
class AllergySeverity(Enum):
    MILD = "MILD"
    MODERATE = "MODERATE"
    SEVERE = "SEVERE"
    ANAPHYLAXIS = "ANAPHYLAXIS"


@strawberry.enum
class AllergyStatus(Enum):
    ACTIVE = "ACTIVE"
    RESOLVED = "RESOLVED"


@strawberry.enum(
    description="PENDING_REVIEW -> VERIFIED or REJECTED (with a reason); VERIFIED -> "
    "DISPENSED. Only a pharmacist moves a prescription along."
)
class VerificationStatus(Enum):
    PENDING_REVIEW = "PENDING_REVIEW"
    VERIFIED = "VERIFIED"
    REJECTED = "REJECTED"
    DISPENSED = "DISPENSED"


@strawberry.enum(
    description="Why a prescriber goes ahead despite a critical alert (the CDS Hooks "
    "overrideReasons idea; system urn:caregraph:override-reason)."
)
class OverrideReason(Enum):
    PATIENT_TOLERATED_BEFORE = "PATIENT_TOLERATED_BEFORE"
    BENEFIT_OUTWEIGHS_RISK = "BENEFIT_OUTWEIGHS_RISK"
    WILL_MONITOR = "WILL_MONITOR"
    ALLERGY_NOT_CONFIRMED = "ALLERGY_NOT_CONFIRMED"
    SPECIALIST_ADVICE = "SPECIALIST_ADVICE"
    OTHER = "OTHER"


@strawberry.type
class AlertSource:
    label: str
    url: str | None


@strawberry.type
class AlertEvidence:
    kind: str = strawberry.field(description="ALLERGY, CONDITION, PRESCRIPTION, DRAFT or PATIENT")
    display: str
    id: str | None = strawberry.field(description="The prescription's id, for PRESCRIPTION")
    code: str | None


@strawberry.type
class AlertSuggestion:
    label: str
    rxcui: str | None
    display: str | None


@strawberry.type
class MedicationAlert:
    id: strawberry.ID = strawberry.field(
        description="Stable for the same rule and evidence: what an acknowledgement names."
    )
    kind: AlertKind
    severity: AlertSeverity
    summary: str = strawberry.field(description="At most 140 characters.")
    detail: str = strawberry.field(description="Markdown.")
    rule_id: str
    source: AlertSource
    evidence: list[AlertEvidence]
    suggestions: list[AlertSuggestion]


@strawberry.type
class MedicationSafetyCheck:
    alerts: list[MedicationAlert]
    highest_severity: AlertSeverity | None
    knowledge_base_version: str
    drug: DrugCoding


@strawberry.type
class DrugCoding:
    text: str = strawberry.field(description="As written.")
    rxcui: str | None = strawberry.field(description="RxNorm ingredient; null: uncoded.")
    atc: str | None
    display: str | None
    coded: bool


@strawberry.type
class CodedCondition:
    text: str
    code: str | None = strawberry.field(description="ICD-10-CM; null: uncoded.")
    system: str | None
    display: str | None
    coded: bool


@strawberry.type
class AllergyRecord:
    text: str
    kind: str | None = strawberry.field(description="CLASS, SUBSTANCE or ALLERGEN")
    code: str | None
    system: str | None
    display: str | None
    coded: bool
    reaction: str | None
    severity: AllergySeverity | None
    status: AllergyStatus


@strawberry.type
class AlertOverride:
    alert_id: strawberry.ID
    kind: AlertKind
    severity: AlertSeverity
    summary: str
    reason: OverrideReason
    comment: str | None
    acknowledged_by: strawberry.ID
    acknowledged_at: datetime


@strawberry.type
class PrescriptionVerification:
    status: VerificationStatus
    reviewed_by: strawberry.ID | None
    reviewed_at: datetime | None
    rejection_reason: str | None
    dispensed_by: strawberry.ID | None
    dispensed_at: datetime | None


@strawberry.type
class KnowledgeSource:
    name: str
    url: str


@strawberry.type
class KnowledgeBaseInfo:
    version: str
    sources: list[KnowledgeSource]
    drug_count: int
    rule_count: int


@strawberry.type(description="Not saved: critical alerts need an acknowledgement each.")
class PrescriptionRefused:
    message: str
    alerts: list[MedicationAlert]
    unacknowledged: list[MedicationAlert]


@strawberry.type
class InvalidVerificationTransition:
    current_status: VerificationStatus | None
    requested_status: VerificationStatus
    message: str


PrescribeResult = Annotated[
    Annotated["Prescription", strawberry.lazy("schema.prescription")] | PrescriptionRefused,
    strawberry.union("PrescribeResult"),
]
VerificationResult = Annotated[
    Annotated["Prescription", strawberry.lazy("schema.prescription")]
    | InvalidVerificationTransition,
    strawberry.union("VerificationResult"),
]


@strawberry.input
class DraftPrescriptionInput:
    drug: str
    start_date: date
    end_date: date | None = None
    dosage: Annotated[DosageInput, strawberry.lazy("schema.prescription")] | None = None
    frequency: Frequency | None = None

    def validate(self) -> None:
        check.text(self.drug, "drug", max_length=200)
        check.date_range(
            self.start_date, self.end_date, start_field="startDate", end_field="endDate"
        )
        if self.dosage is not None:
            self.dosage.to_document()


@strawberry.input
class AlertAcknowledgementInput:
    alert_id: strawberry.ID
    reason: OverrideReason
    comment: str | None = None


@strawberry.input
class AllergyInput:
    substance: str = strawberry.field(description="A drug, drug class or other allergen.")
    reaction: str | None = None
    severity: AllergySeverity | None = None
    status: AllergyStatus = AllergyStatus.ACTIVE

    def to_document(self) -> Document:
        return {
            "text": check.text(self.substance, "allergyRecords.substance", max_length=200),
            "reaction": check.optional_text(
                self.reaction, "allergyRecords.reaction", max_length=200
            ),
            "severity": self.severity.value if self.severity else None,
            "status": self.status.value,
        }
