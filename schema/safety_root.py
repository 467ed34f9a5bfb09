"""The medication-safety root fields (Query and Mutation parts), kept apart from the
types so resolvers/safety.py can import schema/safety.py without a cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from resolvers import safety as resolve
from schema.pagination import Connection
from schema.safety import (
    KnowledgeBaseInfo,
    MedicationSafetyCheck,
    PrescribeResult,
    VerificationResult,
)

if TYPE_CHECKING:
    from schema.prescription import Prescription


@strawberry.type
class SafetyQueries:
    medication_safety_check: MedicationSafetyCheck | None = strawberry.field(
        resolver=resolve.resolve_medication_safety_check,
        description="What prescribing `draft` to the patient would raise, without saving.",
    )
    pharmacy_queue: (
        Connection[Annotated[Prescription, strawberry.lazy("schema.prescription")]] | None
    ) = strawberry.field(
        resolver=resolve.resolve_pharmacy_queue,
        description="Prescriptions awaiting review: highest alert severity first, then oldest.",
    )
    knowledge_base: KnowledgeBaseInfo | None = strawberry.field(
        resolver=resolve.resolve_knowledge_base
    )


@strawberry.type
class SafetyMutations:
    prescribe: PrescribeResult | None = strawberry.field(
        resolver=resolve.resolve_prescribe,
        description="createPrescription with a typed refusal: a CRITICAL alert refuses "
        "unless each one is acknowledged with a coded reason.",
    )
    verify_prescription: VerificationResult | None = strawberry.field(
        resolver=resolve.resolve_verify_prescription
    )
    reject_prescription: VerificationResult | None = strawberry.field(
        resolver=resolve.resolve_reject_prescription
    )
    dispense_prescription: VerificationResult | None = strawberry.field(
        resolver=resolve.resolve_dispense_prescription
    )
