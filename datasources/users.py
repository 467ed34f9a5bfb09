"""Accounts and refresh tokens.

`tokenVersion` is the revocation switch: every access token carries the version it was
issued under, and logout, a password or role change, disabling the account or resetting
MFA increment it, so every outstanding token stops working at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from datasources.documents import Document, DocumentStore, utcnow
from errors import Conflict, NotFound

# What authentication reads on every request: enough to build the principal and to see
# whether the token was revoked (logout, password or role change, disabling, ended session).
_TOKEN_STATE = {
    "role": 1,
    "disabled": 1,
    "tokenVersion": 1,
    "patientId": 1,
    "doctorId": 1,
    "revokedSessions": 1,
}


class UserStore(DocumentStore):
    collection_name = "users"
    entity = "User"
    default_sort = (("email", 1), ("_id", 1))
    sort_types = (str, ObjectId)

    @staticmethod
    def search_filter(*, role: str | None = None, **_: Any) -> Document:
        return {"role": role} if role else {}

    async def by_email(self, *, email: str) -> Document | None:
        return await self.collection.find_one({"email": email.strip().lower()})

    async def by_id(self, *, id: ObjectId) -> Document | None:
        return await self.collection.find_one({"_id": id})

    async def token_state(self, *, id: ObjectId) -> Document | None:
        """The account fields a token is checked against (auth/authenticate.py), in one
        indexed read, so revocation takes effect at once, not when the token expires."""
        return await self.collection.find_one({"_id": id}, projection=_TOKEN_STATE)

    async def accept_totp_step(self, *, id: ObjectId, step: int) -> bool:
        """Record `step` as the account's last accepted TOTP time step, only if it is
        later than any accepted before, atomically: no code (nor an older one still
        inside the drift window) works twice. False if it was not later."""
        fresh = await self.collection.update_one(
            {
                "_id": id,
                "$or": [{"mfa.lastStep": {"$lt": step}}, {"mfa.lastStep": {"$exists": False}}],
            },
            {"$set": {"mfa.lastStep": step}},
        )
        return fresh.modified_count == 1

    async def use_recovery_code(self, *, id: ObjectId, code_hash: str) -> bool:
        """Remove one recovery code; False if it was already used. $pull makes
        concurrent use of one code lose."""
        used = await self.collection.update_one(
            {"_id": id, "mfa.recoveryCodes": code_hash},
            {"$pull": {"mfa.recoveryCodes": code_hash}},
        )
        return used.modified_count == 1

    async def create(
        self,
        *,
        email: str,
        password_hash: str,
        role: str,
        patient_id: ObjectId | None = None,
        doctor_id: ObjectId | None = None,
    ) -> Document:
        try:
            user: Document = await self.insert(
                fields={
                    "email": email.strip().lower(),
                    "passwordHash": password_hash,
                    "role": role,
                    "patientId": patient_id,
                    "doctorId": doctor_id,
                    "disabled": False,
                    "tokenVersion": 1,
                    "mfa": None,
                }
            )
        except DuplicateKeyError:
            raise Conflict("an account with this email already exists", field="email") from None
        return user

    async def change(self, *, id: ObjectId, changes: Document, revoke: bool) -> Document:
        """Apply `changes`; with revoke, every token issued before now stops working."""
        update: Document = {"$set": {**changes, "updatedAt": utcnow()}}
        if revoke:
            update["$inc"] = {"tokenVersion": 1}
        document: Document | None = await self.collection.find_one_and_update(
            {"_id": id}, update, return_document=ReturnDocument.AFTER
        )
        if document is None:
            raise NotFound("User", str(id))
        return document

    async def end_session(self, *, id: ObjectId, session: str, until: datetime) -> None:
        """Refuse the access tokens of one session (refresh-token family) until `until`,
        when the last of them has expired. Kept on the account, so the one read that
        authenticates a request sees it; entries whose time has passed are dropped."""
        now = utcnow()
        account = await self.collection.find_one({"_id": id}, projection={"revokedSessions": 1})
        if account is None:
            return
        update: Document = {"$set": {f"revokedSessions.{session}": until}}
        expired = {
            f"revokedSessions.{name}": ""
            for name, ends in (account.get("revokedSessions") or {}).items()
            if name != session and ends.replace(tzinfo=now.tzinfo) <= now
        }
        if expired:
            update["$unset"] = expired
        await self.collection.update_one({"_id": id}, update)

    async def link_patient(self, *, id: ObjectId, patient_id: ObjectId) -> None:
        await self.collection.update_one({"_id": id}, {"$set": {"patientId": patient_id}})


class RefreshTokenStore:
    """One document per refresh token; a login starts a family, each refresh adds one.

    Using a token marks it used. Presenting a used token again means it was stolen or
    replayed: the whole family is revoked, ending the session for thief and owner alike.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["refresh_tokens"]

    async def record(
        self,
        *,
        jti: str,
        user_id: ObjectId,
        family: str,
        expires_at: datetime,
        session_started_at: datetime | None = None,
    ) -> None:
        now = utcnow()
        await self.collection.insert_one(
            {
                "_id": jti,
                "userId": user_id,
                "family": family,
                "expiresAt": expires_at,
                "usedAt": None,
                "revokedAt": None,
                # Automatic logoff (auth/logoff.py): idle since issue, session age.
                "issuedAt": now,
                "sessionStartedAt": session_started_at or now,
            }
        )

    async def use(
        self,
        *,
        jti: str,
        issued_after: datetime | None = None,
        session_started_after: datetime | None = None,
    ) -> tuple[str, Document | None]:
        """Mark the token used. Returns ('ok', token), ('replayed', _) (family now
        revoked), ('revoked', _), or ('idle' | 'expired', _) when the token sat unused
        past the idle timeout or its session outlived the absolute lifetime (the
        family is then ended)."""
        now = utcnow()
        condition: Document = {"_id": jti, "usedAt": None, "revokedAt": None}
        if issued_after is not None:
            condition["issuedAt"] = {"$gt": issued_after}
        if session_started_after is not None:
            condition["sessionStartedAt"] = {"$gt": session_started_after}
        used = await self.collection.find_one_and_update(condition, {"$set": {"usedAt": now}})
        if used is not None:
            return "ok", used
        existing = await self.collection.find_one({"_id": jti})
        if existing is None or existing["revokedAt"] is not None:
            return "revoked", existing
        await self.revoke_family(family=existing["family"])
        if existing["usedAt"] is not None:
            return "replayed", existing
        started = existing.get("sessionStartedAt")
        if session_started_after is not None and (
            started is None or started <= session_started_after
        ):
            return "expired", existing
        return "idle", existing

    async def revoke_family(self, *, family: str) -> None:
        await self.collection.update_many(
            {"family": family, "revokedAt": None}, {"$set": {"revokedAt": utcnow()}}
        )

    async def revoke_user(self, *, user_id: ObjectId) -> None:
        await self.collection.update_many(
            {"userId": user_id, "revokedAt": None}, {"$set": {"revokedAt": utcnow()}}
        )
