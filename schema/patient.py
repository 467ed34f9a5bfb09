"""Patients: demographics, contact details, conditions and allergies."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from bson import ObjectId

from errors import BadUserInput
from resolvers import patients as resolve
from resolvers import safety
from schema import validation as check
from schema.enums import Sex
from schema.pagination import Connection

if TYPE_CHECKING:
    from datasources.documents import Document
    from schema.appointment import Appointment
    from schema.bill import Bill
    from schema.prescription import Prescription
    from schema.safety import AllergyInput, AllergyRecord, CodedCondition


def whole_months_between(born: date, today: date) -> int:
    """Completed months from `born` to `today`: a month completes on the same day of the
    month, the convention `age` uses for years (so age == ageInMonths // 12)."""
    months = (today.year - born.year) * 12 + today.month - born.month
    return max(months - (today.day < born.day), 0)


@strawberry.type
class Address:
    line1: str | None
    line2: str | None
    city: str | None
    postal_code: str | None
    country: str | None
    # Whose address: PHI reads are audited against the patient (audit/fields.py).
    patient_id: strawberry.Private[ObjectId | None] = None


@strawberry.type
class Contact:
    phone: str | None
    email: str | None
    address: Address | None
    patient_id: strawberry.Private[ObjectId | None] = None


@strawberry.type
class Patient:
    id: strawberry.ID
    given_name: str
    family_name: str
    # Nullable: roles that may not read them (pharmacists) get null and a FORBIDDEN
    # error for the field alone, and the rest of the patient still arrives.
    birth_date: date | None
    sex: Sex
    contact: Contact | None = strawberry.field(
        description="Not shown to pharmacists (null with a FORBIDDEN error)."
    )
    conditions: list[str] = strawberry.field(description="Diagnosed conditions (diseases).")
    allergies: list[str]
    user_id: strawberry.ID | None
    created_at: datetime | None
    updated_at: datetime | None
    object_id: strawberry.Private[ObjectId]
    born: strawberry.Private[date]
    # The stored document, for the coded clinical fields (resolvers/safety.py).
    document: strawberry.Private[dict[str, Any]]

    coded_conditions: list[Annotated[CodedCondition, strawberry.lazy("schema.safety")]] = (
        strawberry.field(
            resolver=safety.resolve_patient_coded_conditions,
            description="`conditions` as ICD-10-CM codes; coded: false where the text "
            "matched no term (kept verbatim).",
        )
    )
    coded_allergies: list[Annotated[AllergyRecord, strawberry.lazy("schema.safety")]] = (
        strawberry.field(
            resolver=safety.resolve_patient_coded_allergies,
            description="Allergies by drug class, substance or other allergen, with "
            "reaction, severity and status.",
        )
    )

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(description=...) as Any
        description="Given and family name."
    )
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(description=...) as Any
        description="Age in whole years today (UTC)."
    )
    def age(self) -> int:
        return whole_months_between(self.born, datetime.now(UTC).date()) // 12

    @strawberry.field(  # type: ignore[untyped-decorator]  # strawberry types field(description=...) as Any
        description="Age in whole months today (UTC), for paediatric dosing: what a pharmacist "
        "sees instead of the birth date."
    )
    def age_in_months(self) -> int:
        return whole_months_between(self.born, datetime.now(UTC).date())

    appointments: (
        Connection[Annotated[Appointment, strawberry.lazy("schema.appointment")]] | None
    ) = strawberry.field(resolver=resolve.resolve_patient_appointments)
    prescriptions: Connection[Annotated[Prescription, strawberry.lazy("schema.prescription")]] = (
        strawberry.field(resolver=resolve.resolve_patient_prescriptions)
    )
    bills: Connection[Annotated[Bill, strawberry.lazy("schema.bill")]] | None = strawberry.field(
        resolver=resolve.resolve_patient_bills
    )

    @classmethod
    def from_document(cls, document: Document) -> Patient:
        contact = document.get("contact") or {}
        address = contact.get("address")
        return cls(
            id=strawberry.ID(str(document["_id"])),
            object_id=document["_id"],
            given_name=document["givenName"],
            family_name=document["familyName"],
            birth_date=document["birthDate"].date(),
            born=document["birthDate"].date(),
            sex=Sex(document["sex"]),
            contact=Contact(
                phone=contact.get("phone"),
                email=contact.get("email"),
                address=Address(
                    line1=address.get("line1"),
                    line2=address.get("line2"),
                    city=address.get("city"),
                    postal_code=address.get("postalCode"),
                    country=address.get("country"),
                    patient_id=document["_id"],
                )
                if address
                else None,
                patient_id=document["_id"],
            ),
            conditions=document.get("conditions", []),
            allergies=document.get("allergies", []),
            user_id=document.get("userId"),
            created_at=document["createdAt"],
            updated_at=document["updatedAt"],
            document=document,
        )


@strawberry.input
class AddressInput:
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    country: str | None = None

    def to_document(self) -> Document:
        return {
            "line1": check.optional_text(self.line1, "address.line1", max_length=200),
            "line2": check.optional_text(self.line2, "address.line2", max_length=200),
            "city": check.optional_text(self.city, "address.city", max_length=100),
            "postalCode": check.optional_text(
                self.postal_code, "address.postalCode", max_length=20
            ),
            "country": check.optional_text(self.country, "address.country", max_length=100),
        }


@strawberry.input
class ContactInput:
    phone: str | None = None
    email: str | None = None
    address: AddressInput | None = None

    def to_document(self) -> Document:
        return {
            "phone": check.phone(self.phone),
            "email": check.email(self.email),
            "address": self.address.to_document() if self.address else None,
        }


def _names(given: str, family: str) -> Document:
    return {
        "givenName": check.text(given, "givenName", max_length=100),
        "familyName": check.text(family, "familyName", max_length=100),
    }


def _conditions(values: list[str]) -> list[str]:
    return check.text_list(values, "conditions", max_items=50, max_length=200)


def _allergies(values: list[str]) -> list[str]:
    return check.text_list(values, "allergies", max_items=50, max_length=200)


def _allergy_records(records: list[AllergyInput] | None) -> Document:
    if records is None:
        return {}
    if len(records) > 50:
        raise BadUserInput("allergyRecords must have at most 50 items", field="allergyRecords")
    return {"codedAllergies": [record.to_document() for record in records]}


@strawberry.input
class CreatePatientInput:
    given_name: str
    family_name: str
    birth_date: date
    sex: Sex
    contact: ContactInput | None = None
    conditions: list[str] = strawberry.field(default_factory=list)
    allergies: list[str] = strawberry.field(default_factory=list)
    allergy_records: list[Annotated[AllergyInput, strawberry.lazy("schema.safety")]] | None = (
        strawberry.field(
            default=None,
            description="Allergies with reaction, severity and status; replaces `allergies`.",
        )
    )

    def to_document(self) -> Document:
        return {
            **_allergy_records(self.allergy_records),
            **_names(self.given_name, self.family_name),
            "birthDate": check.as_utc_midnight(check.past_date(self.birth_date, "birthDate")),
            "sex": self.sex.value,
            "contact": self.contact.to_document() if self.contact else {},
            "conditions": _conditions(self.conditions),
            "allergies": _allergies(self.allergies),
            "userId": None,
        }


@strawberry.input(description="Only the fields given change; null clears contact.")
class UpdatePatientInput:
    given_name: strawberry.Maybe[str | None]
    family_name: strawberry.Maybe[str | None]
    birth_date: strawberry.Maybe[date | None]
    sex: strawberry.Maybe[Sex | None]
    contact: strawberry.Maybe[ContactInput | None]
    conditions: strawberry.Maybe[list[str] | None]
    allergies: strawberry.Maybe[list[str] | None]
    allergy_records: strawberry.Maybe[
        list[Annotated[AllergyInput, strawberry.lazy("schema.safety")]] | None
    ] = strawberry.field(
        description="Allergies with reaction, severity and status; replaces `allergies`."
    )

    def to_changes(self) -> Document:
        changes: Document = {}
        if self.given_name:
            given_name = check.not_null(self.given_name, "givenName")
            changes["givenName"] = check.text(given_name, "givenName", max_length=100)
        if self.family_name:
            family_name = check.not_null(self.family_name, "familyName")
            changes["familyName"] = check.text(family_name, "familyName", max_length=100)
        if self.birth_date:
            birth_date = check.past_date(check.not_null(self.birth_date, "birthDate"), "birthDate")
            changes["birthDate"] = check.as_utc_midnight(birth_date)
        if self.sex:
            changes["sex"] = check.not_null(self.sex, "sex").value
        if self.contact:
            contact = self.contact.value
            changes["contact"] = contact.to_document() if contact else {}
        if self.conditions:
            changes["conditions"] = _conditions(check.not_null(self.conditions, "conditions"))
        if self.allergies:
            changes["allergies"] = _allergies(check.not_null(self.allergies, "allergies"))
        if self.allergy_records:
            changes.update(_allergy_records(self.allergy_records.value or []))
        return changes


@strawberry.type
class PatientQueries:
    patient: Patient | None = strawberry.field(resolver=resolve.resolve_patient)
    patients: Connection[Patient] | None = strawberry.field(resolver=resolve.resolve_patients)


@strawberry.type
class PatientMutations:
    create_patient: Patient | None = strawberry.field(resolver=resolve.resolve_create_patient)
    update_patient: Patient | None = strawberry.field(resolver=resolve.resolve_update_patient)
    delete_patient: strawberry.ID | None = strawberry.field(
        resolver=resolve.resolve_delete_patient,
        description="Refused (CONFLICT) while the patient has appointments, prescriptions "
        "or bills: medical and billing records are never deleted as a side effect.",
    )
