"""Per-request dataloaders. Every relation in the graph resolves through one of these,
so a list of N items costs one round trip per relation, not N.

Loaders live on the request's Context and are created lazily: a loader shared between
requests would hand one caller's results to another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from bson import ObjectId

from datasources.pagination import Page, PageRequest
from datasources.typed_loader import TypedLoader

if TYPE_CHECKING:
    from datasources import DataSources
    from datasources.billing import Row
    from datasources.documents import Document, DocumentStore

T = TypeVar("T")
P = TypeVar("P")  # a parent's id
R = TypeVar("R")  # a child row

# A list's filter as a hashable key part: sorted (name, value) pairs, None left out
# (resolvers/common.criteria); a store's search_filter takes them as keywords.
Criteria = tuple[tuple[str, Any], ...]
# (parent id, page request, criteria): one parent's page of children.
ChildrenKey = tuple[P, PageRequest, Criteria]
# (parent id, criteria): one parent's number of matching children.
CountKey = tuple[P, Criteria]
FetchPages = Callable[[list[P], PageRequest, dict[str, Any]], Awaitable[Mapping[P, Page[R]]]]
FetchCounts = Callable[[list[P], dict[str, Any]], Awaitable[Mapping[P, int]]]


def _children_loader(fetch: FetchPages[P, R]) -> TypedLoader[ChildrenKey[P], Page[R]]:
    """Loader for a parent's page of children.

    Keys that share a page request and criteria are fetched together in one query.
    """

    async def batch(keys: list[ChildrenKey[P]]) -> list[Page[R]]:
        groups: dict[tuple[PageRequest, Criteria], list[P]] = {}
        for parent_id, request, criteria in keys:
            groups.setdefault((request, criteria), []).append(parent_id)
        pages: dict[ChildrenKey[P], Page[R]] = {}
        for (request, criteria), parent_ids in groups.items():
            found = await fetch(parent_ids, request, dict(criteria))
            for parent_id, page in found.items():
                pages[(parent_id, request, criteria)] = page
        return [pages[key] for key in keys]

    return TypedLoader(batch)


def _counts_loader(fetch: FetchCounts[P]) -> TypedLoader[CountKey[P], int]:
    """Loader for a parent's number of matching children (a nested totalCount); keys
    sharing criteria are counted together, grouped by parent."""

    async def batch(keys: list[CountKey[P]]) -> list[int]:
        groups: dict[Criteria, list[P]] = {}
        for parent_id, criteria in keys:
            groups.setdefault(criteria, []).append(parent_id)
        counts: dict[CountKey[P], int] = {}
        for criteria, parent_ids in groups.items():
            found = await fetch(parent_ids, dict(criteria))
            for parent_id, count in found.items():
                counts[(parent_id, criteria)] = count
        return [counts[key] for key in keys]

    return TypedLoader(batch)


class Loaders:
    def __init__(self, sources: DataSources) -> None:
        self.sources = sources
        self._child_counts: dict[tuple[str, str], TypedLoader[CountKey[ObjectId], int]] = {}
        self._once: dict[Hashable, asyncio.Future[Any]] = {}

    def once(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """The result of `fetch` for `key`, fetched once per request however many fields
        ask (45 aliases of the same list are one query, not 45)."""
        if key not in self._once:
            self._once[key] = asyncio.ensure_future(fetch())
        return self._once[key]

    def child_counts(
        self, store: DocumentStore, parent_field: str
    ) -> TypedLoader[CountKey[ObjectId], int]:
        """The totalCount loader of a nested list of `store`'s records under a parent
        named by `parent_field` (created on first use, one per relation)."""
        key = (store.collection_name, parent_field)
        if key not in self._child_counts:

            async def fetch(
                parent_ids: list[ObjectId], criteria: dict[str, Any]
            ) -> dict[ObjectId, int]:
                return await store.counts_by_parent(
                    parent_field=parent_field,
                    parent_ids=parent_ids,
                    filter=store.search_filter(**criteria),
                )

            self._child_counts[key] = _counts_loader(fetch)
        return self._child_counts[key]

    @cached_property
    def bill_counts_by_patient(self) -> TypedLoader[CountKey[str], int]:
        async def fetch(parent_ids: list[str], criteria: dict[str, Any]) -> dict[str, int]:
            return await self.sources.billing.counts_by_patient(patient_ids=parent_ids)

        return _counts_loader(fetch)

    @cached_property
    def patient_by_id(self) -> TypedLoader[ObjectId, Document | None]:
        patients = self.sources.patients
        return TypedLoader(lambda ids: patients.get_many(ids=ids))

    @cached_property
    def doctor_by_id(self) -> TypedLoader[ObjectId, Document | None]:
        doctors = self.sources.doctors
        return TypedLoader(lambda ids: doctors.get_many(ids=ids))

    @cached_property
    def appointment_by_id(self) -> TypedLoader[ObjectId, Document | None]:
        appointments = self.sources.appointments
        return TypedLoader(lambda ids: appointments.get_many(ids=ids))

    @cached_property
    def prescription_by_id(self) -> TypedLoader[ObjectId, Document | None]:
        prescriptions = self.sources.prescriptions
        return TypedLoader(lambda ids: prescriptions.get_many(ids=ids))

    @cached_property
    def bill_by_id(self) -> TypedLoader[int, Row | None]:
        billing = self.sources.billing
        return TypedLoader(lambda ids: billing.get_many(ids=ids))

    @cached_property
    def bill_by_appointment_id(self) -> TypedLoader[str, Row | None]:
        billing = self.sources.billing
        return TypedLoader(lambda ids: billing.by_appointment_ids(appointment_ids=ids))

    def _mongo_children(
        self, store: DocumentStore, parent_field: str
    ) -> TypedLoader[ChildrenKey[ObjectId], Page[Document]]:
        async def fetch(
            parent_ids: list[ObjectId], request: PageRequest, criteria: dict[str, Any]
        ) -> dict[ObjectId, Page[Document]]:
            return await store.pages_by_parent(
                parent_field=parent_field,
                parent_ids=parent_ids,
                filter=store.search_filter(**criteria),
                request=request,
            )

        return _children_loader(fetch)

    @cached_property
    def appointments_by_patient(self) -> TypedLoader[ChildrenKey[ObjectId], Page[Document]]:
        return self._mongo_children(self.sources.appointments, "patientId")

    @cached_property
    def appointments_by_doctor(self) -> TypedLoader[ChildrenKey[ObjectId], Page[Document]]:
        return self._mongo_children(self.sources.appointments, "doctorId")

    @cached_property
    def prescriptions_by_patient(self) -> TypedLoader[ChildrenKey[ObjectId], Page[Document]]:
        return self._mongo_children(self.sources.prescriptions, "patientId")

    @cached_property
    def bills_by_patient(self) -> TypedLoader[ChildrenKey[str], Page[Row]]:
        async def fetch(
            parent_ids: list[str], request: PageRequest, criteria: dict[str, Any]
        ) -> dict[str, Page[Row]]:
            return await self.sources.billing.pages_by_patient(
                patient_ids=parent_ids, request=request, **criteria
            )

        return _children_loader(fetch)
