"""Patients and doctors: people found by name."""

from __future__ import annotations

from datetime import date

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from datasources.clinical_history import new_version, with_new_version
from datasources.documents import Document, DocumentStore
from datasources.filters import merge
from datasources.search import name_filter, normalise, search_terms

WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def with_name_index(fields: Document) -> Document:
    """Derived fields for search and ordering, kept in step with the name."""
    if "givenName" in fields or "familyName" in fields:
        given, family = fields["givenName"], fields["familyName"]
        return {
            **fields,
            "searchTerms": search_terms(given, family),
            "nameKey": normalise(f"{family} {given}"),
        }
    return fields


class PersonStore(DocumentStore):
    default_sort = (("nameKey", 1), ("_id", 1))
    sort_types = (str, ObjectId)

    async def insert(
        self, *, fields: Document, session: AsyncClientSession | None = None
    ) -> Document:
        return await super().insert(fields=with_name_index(fields), session=session)

    async def update(
        self,
        *,
        id: ObjectId,
        changes: Document,
        expect: Document | None = None,
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        if ("givenName" in changes) != ("familyName" in changes):
            current = await self.get(id=id, session=session)
            changes = {
                "givenName": current["givenName"],
                "familyName": current["familyName"],
                **changes,
            }
        return await super().update(
            id=id, changes=with_name_index(changes), expect=expect, session=session
        )


class PatientStore(PersonStore):
    collection_name = "patients"
    entity = "Patient"

    async def insert(
        self, *, fields: Document, session: AsyncClientSession | None = None
    ) -> Document:
        return await super().insert(
            fields={**fields, "clinicalVersion": new_version()}, session=session
        )

    async def update(
        self,
        *,
        id: ObjectId,
        changes: Document,
        expect: Document | None = None,
        session: AsyncClientSession | None = None,
    ) -> Document | None:
        # Conditions and allergies change the safety check: move the history version too.
        return await super().update(
            id=id, changes=with_new_version(changes), expect=expect, session=session
        )

    @staticmethod
    def search_filter(*, name: str | None = None) -> Document:
        return name_filter(name or "")


class DoctorStore(PersonStore):
    collection_name = "doctors"
    entity = "Doctor"

    @staticmethod
    def search_filter(
        *,
        name: str | None = None,
        specialty: str | None = None,
        available_on: date | None = None,
        accepting_new_patients: bool | None = None,
    ) -> Document:
        filter: Document = {}
        if specialty is not None:
            filter["specialty"] = specialty
        if available_on is not None:
            # The same as $elemMatch with one condition, and a plain path the list
            # indexes cover (an $elemMatch hides the field from the embedded planner).
            filter["availability.dayOfWeek"] = WEEKDAYS[available_on.weekday()]
        if accepting_new_patients is not None:
            filter["acceptingNewPatients"] = accepting_new_patients
        # Flat: the embedded server's planner only sees indexes for plain filters.
        return merge(name_filter(name or ""), filter)
