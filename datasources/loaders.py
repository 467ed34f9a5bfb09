"""Per-request dataloaders. Every relation in the graph resolves through one of these,
so a list of N items costs one round trip per relation, not N.

Loaders live on the request's Context and are created lazily: a loader shared between
requests would hand one caller's results to another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from aiodataloader import DataLoader
from bson import ObjectId

from datasources.pagination import Page, PageRequest
from observability.metrics import observed_batches

T = TypeVar("T")

if TYPE_CHECKING:
    from datasources import DataSources
    from datasources.documents import DocumentStore


def _batch_loader(batch: Callable[[list[Any]], Awaitable[Sequence[Any]]]) -> DataLoader:
    return DataLoader(batch_load_fn=observed_batches(batch), max_batch_size=1000)


def _loader(fetch: Callable[..., Awaitable[Sequence[Any]]], keys_argument: str) -> DataLoader:
    """A loader over a store method taking its keys as one keyword argument."""

    async def batch(keys: list[Any]) -> Sequence[Any]:
        return await fetch(**{keys_argument: keys})

    return _batch_loader(batch)


def _children_loader(
    fetch: Callable[..., Awaitable[dict[Hashable, Page]]],
) -> DataLoader:
    """Loader for a parent's page of children, keyed by (parent id, page request, criteria)
    where criteria is a hashable tuple of (name, value) filter pairs.

    Keys that share a page request and criteria are fetched together in one query.
    """

    async def batch(keys: list[tuple[Any, PageRequest, tuple]]) -> list[Page]:
        groups: dict[tuple[PageRequest, tuple], list[Any]] = {}
        for parent_id, request, criteria in keys:
            groups.setdefault((request, criteria), []).append(parent_id)
        pages: dict[tuple, Page] = {}
        for (request, criteria), parent_ids in groups.items():
            found = await fetch(parent_ids=parent_ids, request=request, criteria=dict(criteria))
            for parent_id, page in found.items():
                pages[(parent_id, request, criteria)] = page
        return [pages[key] for key in keys]

    return _batch_loader(batch)


def _counts_loader(fetch: Callable[..., Awaitable[dict[Hashable, int]]]) -> DataLoader:
    """Loader for a parent's number of matching children (a nested totalCount), keyed by
    (parent id, criteria); keys sharing criteria are counted together, grouped by parent."""

    async def batch(keys: list[tuple[Any, tuple]]) -> list[int]:
        groups: dict[tuple, list[Any]] = {}
        for parent_id, criteria in keys:
            groups.setdefault(criteria, []).append(parent_id)
        counts: dict[tuple, int] = {}
        for criteria, parent_ids in groups.items():
            found = await fetch(parent_ids=parent_ids, criteria=dict(criteria))
            for parent_id, count in found.items():
                counts[(parent_id, criteria)] = count
        return [counts[key] for key in keys]

    return _batch_loader(batch)


class Loaders:
    def __init__(self, sources: DataSources) -> None:
        self.sources = sources
        self._child_counts: dict[tuple[str, str], DataLoader] = {}
        self._once: dict[Hashable, asyncio.Future[Any]] = {}

    def once(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """The result of `fetch` for `key`, fetched once per request however many fields
        ask (45 aliases of the same list are one query, not 45)."""
        if key not in self._once:
            self._once[key] = asyncio.ensure_future(fetch())
        return self._once[key]

    def child_counts(self, store: DocumentStore, parent_field: str) -> DataLoader:
        """The totalCount loader of a nested list of `store`'s records under a parent
        named by `parent_field` (created on first use, one per relation)."""
        key = (store.collection_name, parent_field)
        if key not in self._child_counts:

            async def fetch(*, parent_ids: list[ObjectId], criteria: dict) -> dict[Hashable, int]:
                return await store.counts_by_parent(
                    parent_field=parent_field,
                    parent_ids=parent_ids,
                    filter=store.search_filter(**criteria),
                )

            self._child_counts[key] = _counts_loader(fetch)
        return self._child_counts[key]

    @cached_property
    def bill_counts_by_patient(self) -> DataLoader:
        async def fetch(*, parent_ids: list[str], criteria: dict) -> dict[Hashable, int]:
            counts = await self.sources.billing.counts_by_patient(patient_ids=parent_ids)
            return dict(counts)

        return _counts_loader(fetch)

    @cached_property
    def patient_by_id(self) -> DataLoader:
        return _loader(self.sources.patients.get_many, "ids")

    @cached_property
    def doctor_by_id(self) -> DataLoader:
        return _loader(self.sources.doctors.get_many, "ids")

    @cached_property
    def appointment_by_id(self) -> DataLoader:
        return _loader(self.sources.appointments.get_many, "ids")

    @cached_property
    def prescription_by_id(self) -> DataLoader:
        return _loader(self.sources.prescriptions.get_many, "ids")

    @cached_property
    def bill_by_id(self) -> DataLoader:
        return _loader(self.sources.billing.get_many, "ids")

    @cached_property
    def bill_by_appointment_id(self) -> DataLoader:
        return _loader(self.sources.billing.by_appointment_ids, "appointment_ids")

    def _mongo_children(self, store, parent_field: str) -> DataLoader:
        async def fetch(*, parent_ids: list[ObjectId], request: PageRequest, criteria: dict):
            return await store.pages_by_parent(
                parent_field=parent_field,
                parent_ids=parent_ids,
                filter=store.search_filter(**criteria),
                request=request,
            )

        return _children_loader(fetch)

    @cached_property
    def appointments_by_patient(self) -> DataLoader:
        return self._mongo_children(self.sources.appointments, "patientId")

    @cached_property
    def appointments_by_doctor(self) -> DataLoader:
        return self._mongo_children(self.sources.appointments, "doctorId")

    @cached_property
    def prescriptions_by_patient(self) -> DataLoader:
        return self._mongo_children(self.sources.prescriptions, "patientId")

    @cached_property
    def bills_by_patient(self) -> DataLoader:
        async def fetch(*, parent_ids: list[str], request: PageRequest, criteria: dict):
            return await self.sources.billing.pages_by_patient(
                patient_ids=parent_ids, request=request, **criteria
            )

        return _children_loader(fetch)
