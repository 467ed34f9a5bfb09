"""Reading the audit log, for one caller: administrators search it and verify its
chain; a patient reads who else accessed their own record. The log itself
(datasources/audit_log.py) never reaches a resolver: only these reads do."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from audit.chain import Verdict
from auth.roles import Principal, Role
from datasources.audit_log import AuditLog
from datasources.caller import require_reader
from errors import Forbidden

Record = dict[str, Any]


class AuditTrail:
    def __init__(self, log: AuditLog, principal: Principal | None) -> None:
        self._log, self._principal = log, principal

    async def events(
        self,
        *,
        patient_id: str | None,
        actor_id: str | None,
        starts_from: datetime | None,
        before: datetime | None,
        action: str | None,
        first: int,
        before_seq: int | None,
    ) -> list[Record]:
        """Newest first, `first + 1` rows (the extra says more exist); administrators."""
        require_reader(self._principal, "Query", "auditEvents")
        filter: dict[str, Any] = {}
        if patient_id is not None:
            filter["patientIds"] = patient_id
        if actor_id is not None:
            filter["actor.userId"] = actor_id
        if starts_from or before:
            filter["recordedAt"] = {
                **({"$gte": starts_from} if starts_from else {}),
                **({"$lt": before} if before else {}),
            }
        if action is not None:
            filter["action"] = action
        return await self._log.page(filter=filter, first=first, before_seq=before_seq)

    async def verify(self) -> Verdict:
        require_reader(self._principal, "Query", "auditIntegrity")
        return await self._log.verify()

    def patient(self) -> Principal:
        """The calling patient, or refused: only a patient account has an access log."""
        principal = self._principal
        if principal is None or principal.role is not Role.PATIENT or principal.patient_id is None:
            raise Forbidden("only a patient account has an access log", reason="ROLE")
        return principal

    async def my_access_log(self, *, first: int, before_seq: int | None) -> list[Record]:
        """Others' access to the calling patient's record, newest first, `first + 1`
        rows; the patient's own use of the app is not listed."""
        me = self.patient()
        filter = {"patientIds": str(me.patient_id), "actor.userId": {"$ne": str(me.user_id)}}
        return await self._log.page(filter=filter, first=first, before_seq=before_seq)
