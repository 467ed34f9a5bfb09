"""Doctors: specialty, weekly availability, whether they take new patients."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId

from errors import BadUserInput
from resolvers import doctors as resolve
from schema import validation as check
from schema.enums import DayOfWeek, Specialty
from schema.pagination import Connection

if TYPE_CHECKING:
    from datasources.documents import Document
    from schema.appointment import Appointment


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _time(minutes: int) -> time:
    return time(hour=minutes // 60 % 24, minute=minutes % 60) if minutes < 1440 else time(23, 59)


@strawberry.type(description="A weekly window in which the doctor sees patients (UTC).")
class AvailabilityWindow:
    day_of_week: DayOfWeek
    start_time: time
    end_time: time = strawberry.field(description="End of the window; 23:59 means midnight.")


@strawberry.input
class AvailabilityWindowInput:
    day_of_week: DayOfWeek
    start_time: time
    end_time: time = strawberry.field(description="Exclusive; 23:59 stands for midnight.")

    def to_document(self) -> Document:
        start = _minutes(self.start_time)
        end = 1440 if self.end_time == time(23, 59) else _minutes(self.end_time)
        if start % 5 or end % 5:
            raise BadUserInput(
                "availability times must be on 5-minute boundaries", field="availability"
            )
        if end <= start:
            raise BadUserInput("availability endTime must be after startTime", field="availability")
        return {"dayOfWeek": self.day_of_week.value, "startMinute": start, "endMinute": end}


def _availability(windows: list[AvailabilityWindowInput]) -> list[Document]:
    if len(windows) > 28:
        raise BadUserInput("availability may hold at most 28 windows", field="availability")
    documents = sorted(
        (w.to_document() for w in windows),
        key=lambda w: (list(DayOfWeek.__members__).index(w["dayOfWeek"]), w["startMinute"]),
    )
    for before, after in zip(documents, documents[1:], strict=False):
        if before["dayOfWeek"] == after["dayOfWeek"] and after["startMinute"] < before["endMinute"]:
            raise BadUserInput("availability windows must not overlap", field="availability")
    return documents


@strawberry.type
class Doctor:
    id: strawberry.ID
    given_name: str
    family_name: str
    specialty: Specialty
    availability: list[AvailabilityWindow]
    accepting_new_patients: bool
    user_id: strawberry.ID | None
    created_at: datetime
    updated_at: datetime
    object_id: strawberry.Private[ObjectId]

    @strawberry.field
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    appointments: (
        Connection[Annotated[Appointment, strawberry.lazy("schema.appointment")]] | None
    ) = strawberry.field(resolver=resolve.resolve_doctor_appointments)

    @classmethod
    def from_document(cls, document: Document) -> Doctor:
        return cls(
            id=strawberry.ID(str(document["_id"])),
            object_id=document["_id"],
            given_name=document["givenName"],
            family_name=document["familyName"],
            specialty=Specialty(document["specialty"]),
            availability=[
                AvailabilityWindow(
                    day_of_week=DayOfWeek(w["dayOfWeek"]),
                    start_time=_time(w["startMinute"]),
                    end_time=_time(w["endMinute"]),
                )
                for w in document.get("availability", [])
            ],
            accepting_new_patients=document.get("acceptingNewPatients", True),
            user_id=document.get("userId"),
            created_at=document["createdAt"],
            updated_at=document["updatedAt"],
        )


@strawberry.input
class CreateDoctorInput:
    given_name: str
    family_name: str
    specialty: Specialty
    availability: list[AvailabilityWindowInput] = strawberry.field(default_factory=list)
    accepting_new_patients: bool = True

    def to_document(self) -> Document:
        return {
            "givenName": check.text(self.given_name, "givenName", max_length=100),
            "familyName": check.text(self.family_name, "familyName", max_length=100),
            "specialty": self.specialty.value,
            "availability": _availability(self.availability),
            "acceptingNewPatients": self.accepting_new_patients,
            "userId": None,
        }


@strawberry.input(description="Only the fields given change.")
class UpdateDoctorInput:
    given_name: strawberry.Maybe[str | None]
    family_name: strawberry.Maybe[str | None]
    specialty: strawberry.Maybe[Specialty | None]
    availability: strawberry.Maybe[list[AvailabilityWindowInput] | None]
    accepting_new_patients: strawberry.Maybe[bool | None]

    def to_changes(self) -> Document:
        changes: Document = {}
        if self.given_name:
            given_name = check.not_null(self.given_name, "givenName")
            changes["givenName"] = check.text(given_name, "givenName", max_length=100)
        if self.family_name:
            family_name = check.not_null(self.family_name, "familyName")
            changes["familyName"] = check.text(family_name, "familyName", max_length=100)
        if self.specialty:
            changes["specialty"] = check.not_null(self.specialty, "specialty").value
        if self.availability:
            availability = check.not_null(self.availability, "availability")
            changes["availability"] = _availability(availability)
        if self.accepting_new_patients:
            changes["acceptingNewPatients"] = check.not_null(
                self.accepting_new_patients, "acceptingNewPatients"
            )
        return changes


@strawberry.type
class DoctorQueries:
    doctor: Doctor | None = strawberry.field(resolver=resolve.resolve_doctor)
    doctors: Connection[Doctor] | None = strawberry.field(resolver=resolve.resolve_doctors)


@strawberry.type
class DoctorMutations:
    create_doctor: Doctor | None = strawberry.field(resolver=resolve.resolve_create_doctor)
    update_doctor: Doctor | None = strawberry.field(
        resolver=resolve.resolve_update_doctor,
        description="Availability changes apply to new bookings; booked appointments stay.",
    )
    delete_doctor: strawberry.ID | None = strawberry.field(
        resolver=resolve.resolve_delete_doctor,
        description="Refused (CONFLICT) while the doctor has appointments or prescriptions.",
    )
