"""Break-glass access for one caller: a doctor requests it for a patient they do not
treat, administrators review and revoke grants. The grant store
(datasources/emergency.py) never reaches a resolver: only these operations do, each for
the caller it was built for (the requesting doctor is always the caller)."""

from __future__ import annotations

from bson import ObjectId

from auth.roles import Principal
from datasources.caller import require_reader
from datasources.documents import Document
from datasources.emergency import EmergencyGrantStore
from datasources.phi_access import Transaction
from errors import Forbidden


class EmergencyAccess:
    def __init__(self, grants: EmergencyGrantStore, principal: Principal | None) -> None:
        self._grants, self._principal = grants, principal

    def requester(self) -> tuple[ObjectId, ObjectId]:
        """The calling doctor's (doctor id, user id), or refused."""
        principal = require_reader(self._principal, "Mutation", "requestEmergencyAccess")
        if principal.doctor_id is None:
            raise Forbidden(
                "this account is not linked to a doctor record", reason="NO_DOCTOR_RECORD"
            )
        return principal.doctor_id, principal.user_id

    async def grant(
        self, *, patient_id: ObjectId, reason: str, minutes: int, session: Transaction | None
    ) -> Document:
        """A new grant to the calling doctor (in `session`'s transaction when given)."""
        doctor_id, user_id = self.requester()
        return await self._grants.grant(
            doctor_id=doctor_id,
            user_id=user_id,
            patient_id=patient_id,
            reason=reason,
            minutes=minutes,
            session=session,
        )

    async def own(self, *, id: ObjectId) -> Document | None:
        """One of the calling doctor's own grants."""
        doctor_id, _ = self.requester()
        return await self._grants.get(id=id, doctor_id=doctor_id)

    async def revoke(self, *, id: ObjectId) -> Document | None:
        """Revoked by the caller (administrators); None when there is no such grant."""
        principal = require_reader(self._principal, "Mutation", "revokeEmergencyAccess")
        return await self._grants.revoke(id=id, by=principal.user_id)

    async def page(
        self, *, active: bool | None, first: int, after: ObjectId | None
    ) -> list[Document]:
        """Newest first, `first + 1` rows; administrators (Query.emergencyAccessGrants)."""
        require_reader(self._principal, "Query", "emergencyAccessGrants")
        return await self._grants.page(active=active, first=first, after=after)
