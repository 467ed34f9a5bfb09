"""Self sign-up without account enumeration.

`register` answers every well-formed request the same way, after the same bcrypt work,
whether or not the address already has an account: the response never says who is a
patient here. What differs goes to the address itself, through the outbox: a fresh
address gets a one-time code, an address with an account gets a notice to its owner.
Only `verifyEmail` with that code creates the account and its patient record and signs
in, so "register, then try to log in" tells an outsider nothing either: an unverified
sign-up has no account, and `login` answers as for a wrong password.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from accounts.sessions import Session, SessionService
from auth.passwords import hash_password
from auth.roles import Role
from datasources import DataSources
from datasources.documents import Document, utcnow
from datasources.outbox import ACCOUNT_EXISTS, VERIFY_EMAIL, Outbox
from datasources.redis.throttle import RegistrationThrottle
from datasources.registrations import PendingRegistrations, new_code
from errors import Conflict, Unauthenticated
from settings import Settings

log = logging.getLogger(__name__)

RECEIVED = (
    "Thank you. We have sent a message to this address: "
    "follow it to finish signing up (verifyEmail with the code it contains)."
)
INVALID_VERIFICATION = "invalid email or verification code"


@dataclass(frozen=True)
class RegistrationService:
    sessions: SessionService
    # Unscoped: the patient record is created before its owner has a session.
    records: Callable[[], DataSources]
    pending: PendingRegistrations
    outbox: Outbox
    throttle: RegistrationThrottle
    settings: Settings

    async def register(self, *, email: str, password: str, patient: Document) -> str:
        """Queue the sign-up (or the owner's notice); returns the neutral message. The
        caller has validated the input and counted the attempt."""
        password_hash = await hash_password(password, rounds=self.settings.bcrypt_rounds)
        existing = await self.sessions.users.by_email(email=email)
        if existing is not None:
            await self.outbox.enqueue(to=email, template=ACCOUNT_EXISTS, data={})
            log.info(
                "registration attempt for an existing account: user %s",
                existing["_id"],
                extra={"event": "registration.existing_account", "user_id": str(existing["_id"])},
            )
            return RECEIVED
        code = new_code()
        ttl = timedelta(seconds=self.settings.email_verification_ttl_s)
        pending = await self.pending.replace(
            email=email, password_hash=password_hash, patient=patient, code=code, ttl=ttl
        )
        await self.outbox.enqueue(
            to=email, template=VERIFY_EMAIL, data={"code": code, "expiresAt": pending["expiresAt"]}
        )
        if not self.settings.production:
            # So a newcomer can finish signing up from GraphiQL with no mail gateway.
            # Never the address: logs are read more widely than the users collection.
            log.info("verification code issued for sign-up %s: %s", pending["_id"], code)
        return RECEIVED

    async def verify(self, *, email: str, code: str, ip: str) -> Session:
        """Create the account and patient record of a confirmed sign-up and sign in.
        Throttled like login; every failure gives the same answer."""
        await self.sessions.throttle.attempt(email=email, ip=ip)
        claimed = await self.pending.claim(email=email, code=code, now=utcnow())
        if claimed is None:
            raise Unauthenticated(INVALID_VERIFICATION)
        patients = self.records().patients
        patient = await patients.insert(fields=claimed["patient"])
        try:
            user = await self.sessions.users.create(
                email=email,
                password_hash=claimed["passwordHash"],
                role=Role.PATIENT.value,
                patient_id=patient["_id"],
            )
        except Conflict:
            # An admin created an account for this address meanwhile: that one stands.
            await patients.delete(id=patient["_id"])  # leave no orphan record
            raise Unauthenticated(INVALID_VERIFICATION) from None
        await patients.update(id=patient["_id"], changes={"userId": str(user["_id"])})
        await self.sessions.throttle.succeeded(email=email, ip=ip)
        return await self.sessions.start(user, mfa_verified=False)
