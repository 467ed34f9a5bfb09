"""Bills, kept in the SQL billing database and joined to MongoDB records by id."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers import bills as resolve
from schema import validation as check
from schema.money import from_cents, money_cents
from schema.pagination import Connection

if TYPE_CHECKING:
    from datasources.documents import Document
    from schema.appointment import Appointment
    from schema.patient import Patient


@strawberry.type
class Bill:
    id: strawberry.ID
    disease: str
    total_cost: Decimal
    created_at: datetime
    paid: bool
    paid_at: datetime | None
    patient_id: strawberry.Private[str]
    appointment_id: strawberry.Private[str | None]

    patient: Annotated[Patient, strawberry.lazy("schema.patient")] = strawberry.field(
        resolver=resolve.resolve_bill_patient
    )
    appointment: Annotated[Appointment, strawberry.lazy("schema.appointment")] | None = (
        strawberry.field(resolver=resolve.resolve_bill_appointment)
    )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Bill:
        return cls(
            id=strawberry.ID(str(row["id"])),
            patient_id=row["patient_id"],
            appointment_id=row["appointment_id"],
            disease=row["disease"],
            total_cost=from_cents(row["total_cost_cents"]),
            created_at=row["created_at"],
            paid=row["paid"],
            paid_at=row["paid_at"],
        )


@strawberry.input
class CreateBillInput:
    patient_id: strawberry.ID
    appointment_id: strawberry.ID | None = None
    disease: str
    total_cost: Decimal
    paid: bool = False

    def to_row(self) -> Document:
        return {
            "disease": check.text(self.disease, "disease", max_length=200),
            "total_cost_cents": money_cents(self.total_cost, "totalCost"),
            "paid": self.paid,
        }


@strawberry.input(description="Only the fields given change.")
class UpdateBillInput:
    disease: strawberry.Maybe[str | None]
    total_cost: strawberry.Maybe[Decimal | None]
    paid: strawberry.Maybe[bool | None]

    def to_changes(self) -> Document:
        changes: Document = {}
        if self.disease:
            disease = check.not_null(self.disease, "disease")
            changes["disease"] = check.text(disease, "disease", max_length=200)
        if self.total_cost:
            total_cost = check.not_null(self.total_cost, "totalCost")
            changes["total_cost_cents"] = money_cents(total_cost, "totalCost")
        if self.paid:
            changes["paid"] = check.not_null(self.paid, "paid")
        return changes


@strawberry.type
class BillQueries:
    bill: Bill | None = strawberry.field(resolver=resolve.resolve_bill)
    bills: Connection[Bill] | None = strawberry.field(resolver=resolve.resolve_bills)


@strawberry.type
class BillMutations:
    create_bill: Bill | None = strawberry.field(resolver=resolve.resolve_create_bill)
    update_bill: Bill | None = strawberry.field(resolver=resolve.resolve_update_bill)
    delete_bill: strawberry.ID | None = strawberry.field(
        resolver=resolve.resolve_delete_bill,
        description="Only an unpaid bill can be deleted (CONFLICT otherwise).",
    )
