"""Per-request dataloaders. Every relation in the graph resolves through one of these,
so a list of N items costs one round trip per relation, not N.

Loaders live on the request's Context and are created lazily: a loader shared between
requests would hand one caller's results to another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from aiodataloader import DataLoader
from bson import ObjectId

from datasources.pagination import Page, PageRequest
from observability.metrics import observed_batches

if TYPE_CHECKING:
    from datasources import DataSources


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


class Loaders:
    def __init__(self, sources: DataSources) -> None:
        self.sources = sources

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
