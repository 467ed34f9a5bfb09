"""Turning a request's PHI access into audit records, and refusing delivery when that
fails (fail closed).

- Reads: the schema's extensions fill the request's AuditBuffer; `finish_request` runs
  once, after execution and before the response leaves: the bulk-export guard, then one
  batch write of the request's records. If either refuses, no PHI is delivered.
- Writes: DocumentStore's writes of PHI collections call `AuditWriter.committed_with`,
  which stores the change and its audit record in one transaction, so neither commits
  without the other.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from audit.buffer import AuditBuffer
from audit.records import Action, Entity, Outcome, build_record
from datasources.audit_log import AuditLog, AuditUnavailable
from datasources.redis.phi_guard import BulkExportGuard

if TYPE_CHECKING:
    from datasources.documents import Document
    from datasources.scope import AccessScope

T = TypeVar("T")
# The transaction a write and its audit record share; callers only pass it through.
Transaction: TypeAlias = AsyncClientSession
logger = logging.getLogger("caregraph.phi_guard")

# Collections whose writes are PHI writes, and the resource type their records name.
PHI_COLLECTIONS = {
    "patients": "Patient",
    "appointments": "Appointment",
    "prescriptions": "Prescription",
}


class BulkExportRefused(Exception):
    """The caller's distinct-patient budget is spent: no more PHI this window."""


async def _grant_ids(scope: AccessScope) -> dict[str, str]:
    grants = await scope.emergency_grants()
    return {str(patient): str(grant) for patient, grant in grants.items()}


class AuditWriter:
    """The write side of one request's audit trail."""

    def __init__(
        self, db: AsyncDatabase[Document], log: AuditLog, buffer: AuditBuffer, scope: AccessScope
    ) -> None:
        self.db, self.log, self.buffer, self.scope = db, log, buffer, scope

    async def record_write(
        self,
        *,
        action: Action,
        collection: str,
        document: dict[str, Any],
        fields: Iterable[str],
        session: AsyncClientSession,
    ) -> None:
        patient_id = document["_id"] if collection == "patients" else document.get("patientId")
        grants = await _grant_ids(self.scope)
        entity = Entity(
            PHI_COLLECTIONS[collection],
            str(document["_id"]),
            str(patient_id),
            fields=set(fields),
            emergency_grant_id=grants.get(str(patient_id)),
        )
        await self._append_success(action, entity, session=session)

    async def record_row_write(
        self,
        *,
        action: Action,
        resource_type: str,
        record_id: str,
        patient_id: str,
        fields: Iterable[str],
    ) -> None:
        """A change in another store (SQL billing): its record is stored before that
        store commits, so a failed audit write rolls the change back."""
        entity = Entity(resource_type, record_id, patient_id, fields=set(fields))
        await self._append_success(action, entity)

    async def record_event(
        self,
        *,
        action: Action,
        resource_type: str,
        record_id: str,
        patient_id: str,
        grant_id: str | None,
        session: AsyncClientSession,
    ) -> None:
        """An audited event that is not a field change (granting break-glass access)."""
        entity = Entity(resource_type, record_id, patient_id, emergency_grant_id=grant_id)
        await self._append_success(action, entity, session=session)

    async def _append_success(
        self, action: Action, entity: Entity, *, session: AsyncClientSession | None = None
    ) -> None:
        """One successful action on one record, built by the one builder and appended."""
        record = build_record(
            actor=self.buffer.actor,
            channel=self.buffer.channel,
            action=action,
            outcome=Outcome.SUCCESS,
            entities=[entity],
        )
        await self.log.append([record], session=session)

    async def committed_with(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run `work` (a change that records its audit entry in its session) in a
        transaction of its own; retried when a concurrent writer took the audit seq."""
        try:
            async with self.db.client.start_session() as session:
                return await session.with_transaction(work)
        except AuditUnavailable:
            raise
        except Exception as error:
            if isinstance(error, PyMongoError) and error.has_error_label(
                "TransientTransactionError"
            ):
                raise AuditUnavailable(str(error)) from error
            raise


async def finish_request(
    *,
    buffer: AuditBuffer,
    log: AuditLog,
    scope: AccessScope,
    guard: BulkExportGuard | None,
) -> None:
    """Before the response leaves: admit the request's PHI reads against the bulk-export
    budget, then write its audit records in one batch. Raises BulkExportRefused or
    AuditUnavailable; either way the caller must not deliver the response."""
    if buffer.empty:
        return  # no PHI touched: nothing to audit, nothing to refuse
    outcome = Outcome.SUCCESS
    patients = buffer.patients_read()
    if guard is not None and patients and buffer.actor.user_id:
        try:
            admitted = await guard.admit(
                user_id=buffer.actor.user_id, role=buffer.actor.role, patients=patients
            )
        except RedisError as error:
            # Availability of care first: without Redis the guard cannot count, so the
            # request goes on, still audited (that part fails closed), and it is logged.
            logger.error("bulk-export guard unavailable, not enforced: %s", error)
            admitted = True
        if not admitted:
            outcome = Outcome.RATE_LIMITED
    records = buffer.records(emergency_grants=await _grant_ids(scope), read_outcome=outcome)
    await log.append(records)
    if outcome is Outcome.RATE_LIMITED:
        raise BulkExportRefused()
