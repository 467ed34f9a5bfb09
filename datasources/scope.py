"""Object-level access, enforced where the data is read: every store adds the caller's
scope to its queries, so no resolver (nested or not) can forget it. The rules are
auth/policy.py's ROW_SCOPES; this module turns them into MongoDB filters and SQL."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from auth.policy import ROW_SCOPES, Scope
from auth.roles import Principal
from datasources.billing_tables import bills
from datasources.documents import Document
from datasources.emergency import EmergencyGrantStore

if TYPE_CHECKING:
    from datasources.phi_access import AuditWriter

if TYPE_CHECKING:
    from datasources.generation_cache import GenerationCache

# Matches no document: what a role without access to a collection sees.
NOTHING: dict[str, Any] = {"_id": {"$in": []}}


class AccessScope:
    def __init__(
        self,
        principal: Principal | None,
        db: AsyncDatabase[Document] | None = None,
        *,
        unrestricted: bool = False,
    ) -> None:
        self.principal, self.db, self.unrestricted = principal, db, unrestricted
        self._related: asyncio.Future[list[ObjectId]] | None = None
        # The process's cache of derived values (set by DataSources.build), if any.
        self.cache: GenerationCache | None = None
        self._grants: asyncio.Task[dict[ObjectId, ObjectId]] | None = None
        # Writes of PHI record their audit entry through this (datasources/phi_access.py).
        self.audit: AuditWriter | None = None

    @classmethod
    def system(cls) -> AccessScope:
        """For the service itself (start-up, demo data, account management)."""
        return cls(None, unrestricted=True)

    def rule(self, collection: str) -> Scope | None:
        if self.unrestricted:
            return Scope.ALL
        role = self.principal.effective_role if self.principal else None
        return ROW_SCOPES[collection].get(role) if role else None

    async def mongo_filter(self, collection: str) -> dict[str, Any]:
        rule = self.rule(collection)
        if rule is Scope.ALL:
            return {}
        principal = self.principal
        if rule is None or principal is None:
            return NOTHING
        own_field = "_id" if collection == "patients" else "patientId"
        if rule is Scope.OWN:
            return {own_field: principal.patient_id} if principal.patient_id else NOTHING
        if rule is Scope.OWN_SCHEDULE:
            return {"doctorId": principal.doctor_id} if principal.doctor_id else NOTHING
        if rule is Scope.CARE_RELATIONSHIP:
            return {own_field: {"$in": await self.related_patients()}}
        raise AssertionError(f"unhandled scope {rule}")

    def sql_condition(self) -> sa.ColumnElement[bool]:
        rule = self.rule("bills")
        if rule is Scope.ALL:
            return sa.true()
        if rule is Scope.OWN and self.principal and self.principal.patient_id:
            return bills.c.patient_id == str(self.principal.patient_id)
        return sa.false()

    async def related_patients(self) -> list[ObjectId]:
        """Patients the calling doctor has an appointment or prescription with; computed
        once per request, however many resolvers ask."""
        if self._related is None:
            doctor_id = self.principal.doctor_id if self.principal else None
            if self.cache is not None and doctor_id is not None:
                # Between writes, a doctor's care relationships do not change.
                key = ("related patients", doctor_id)
                load = self.cache.get_or_compute(key, self._load_related)
            else:
                load = self._load_related()
            self._related = asyncio.ensure_future(load)
        # Break-glass grants join per request, never from the cache: they start, expire
        # and are revoked without a write the cache's generation follows.
        granted = await self.emergency_grants()
        treated = await self._related
        return sorted(set(treated) | set(granted)) if granted else treated

    async def _load_related(self) -> list[ObjectId]:
        doctor_id = self.principal.doctor_id if self.principal else None
        if doctor_id is None or self.db is None:
            return []
        seen = await self.db["appointments"].distinct("patientId", {"doctorId": doctor_id})
        prescribed = await self.db["prescriptions"].distinct("patientId", {"doctorId": doctor_id})
        return sorted(set(seen) | set(prescribed))

    async def emergency_grants(self) -> dict[ObjectId, ObjectId]:
        """The calling doctor's break-glass grants in force (patient id -> grant id), read
        once per request: they join CARE_RELATIONSHIP (datasources/emergency.py)."""
        if self._grants is None:
            self._grants = asyncio.ensure_future(self._load_grants())
        return await self._grants

    async def _load_grants(self) -> dict[ObjectId, ObjectId]:
        doctor_id = self.principal.doctor_id if self.principal else None
        if doctor_id is None or self.db is None or self.unrestricted:
            return {}
        return await EmergencyGrantStore(self.db).active_for(doctor_id=doctor_id)
