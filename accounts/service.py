"""Every account operation a resolver may ask for, in one service.

The stores behind it are unscoped (every account; the patient and doctor records an
account links to), because signing up, signing in and managing accounts happen before
or outside any caller's row scope. They stay inside this service: a resolver passes
arguments and gets documents back, and never holds a store it could read more with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bson import ObjectId

from accounts.registration import RegistrationService
from accounts.sessions import SecondFactorNeeded, Session, SessionService
from auth import mfa
from auth.passwords import check_policy, hash_password, verify_password
from auth.roles import Role
from datasources import DataSources
from datasources.documents import Document
from datasources.pagination import PageRequest
from errors import BadUserInput, Conflict, Unauthenticated
from settings import Settings

# The most accounts one `users` list returns.
USER_LIST_LIMIT = 500


@dataclass(frozen=True)
class MfaEnrollment:
    secret: str
    provisioning_uri: str


class AccountService:
    def __init__(
        self,
        *,
        sessions: SessionService,
        registration: Callable[[], RegistrationService],
        records: Callable[[], DataSources],
        settings: Settings,
    ) -> None:
        # Private: what a resolver may do is this class's methods, not the stores'.
        self._sessions, self._settings = sessions, settings
        # Built when a method needs them: most requests never do.
        self._registration, self._records = registration, records

    # Signing up (accounts/registration.py).

    async def count_sign_up(self, *, ip: str) -> None:
        """Count a sign-up attempt from `ip`, before any other work (RateLimited when
        the address has used up its budget): invalid sign-ups use it up too."""
        await self._registration().throttle.attempt(ip=ip)

    async def register(self, *, email: str, password: str, patient: Document) -> str:
        """Queue a validated, counted sign-up; the neutral message for the caller."""
        return await self._registration().register(email=email, password=password, patient=patient)

    async def verify_email(self, *, email: str, code: str, ip: str) -> Session:
        return await self._registration().verify(email=email, code=code, ip=ip)

    # Signing in and out (accounts/sessions.py).

    async def login(
        self,
        *,
        email: str,
        password: str,
        ip: str,
        totp_code: str | None = None,
        recovery_code: str | None = None,
    ) -> Session | SecondFactorNeeded:
        return await self._sessions.login(
            email=email, password=password, ip=ip, totp_code=totp_code, recovery_code=recovery_code
        )

    async def refresh(self, *, token: str) -> Session:
        return await self._sessions.refresh(token=token)

    async def logout(self, *, user_id: ObjectId) -> None:
        """End every session of the account."""
        await self._sessions.end_all(user_id=user_id)

    # The caller's own account.

    async def me(self, *, user_id: ObjectId) -> Document:
        return await self._sessions.users.get(id=user_id)

    async def change_password(
        self, *, user_id: ObjectId, current_password: str, new_password: str, ip: str
    ) -> None:
        """Throttled like login; every session ends, so sign in again afterwards."""
        users, throttle = self._sessions.users, self._sessions.throttle
        user = await users.get(id=user_id)
        await throttle.attempt(email=user["email"], ip=ip)
        rounds = self._settings.bcrypt_rounds
        if not await verify_password(current_password, user["passwordHash"], rounds=rounds):
            raise Unauthenticated("current password is wrong")
        await throttle.succeeded(email=user["email"], ip=ip)
        check_policy(new_password, context_words=[user["email"].split("@")[0]], field="newPassword")
        await self._sessions.end_all(
            user_id=user_id, passwordHash=await hash_password(new_password, rounds=rounds)
        )

    async def enroll_mfa(self, *, user_id: ObjectId) -> MfaEnrollment:
        """A new, unconfirmed TOTP secret for the account."""
        users = self._sessions.users
        user = await users.get(id=user_id)
        if (user.get("mfa") or {}).get("confirmed"):
            raise Conflict("multi-factor authentication is already set up; an admin can reset it")
        secret = mfa.new_secret()
        await users.change(
            id=user_id, changes={"mfa": {"secret": secret, "confirmed": False}}, revoke=False
        )
        return MfaEnrollment(secret, mfa.provisioning_uri(secret, user["email"]))

    async def confirm_mfa(self, *, user_id: ObjectId, code: str) -> list[str]:
        """Turn the second factor on with a first code; the one-time recovery codes."""
        user = await self._sessions.users.get(id=user_id)
        state = user.get("mfa") or {}
        if not state.get("secret") or state.get("confirmed"):
            raise Conflict("start with enrollMfa")
        step = mfa.matching_step(state["secret"], code)
        if step is None:
            raise BadUserInput("the code does not match; check the device's clock", field="code")
        codes, hashes = mfa.new_recovery_codes()
        # Sessions from before the second factor end: sign in again with the code.
        await self._sessions.end_all(
            user_id=user_id,
            mfa={
                "secret": state["secret"],
                "confirmed": True,
                "recoveryCodes": hashes,
                "lastStep": step,
            },
        )
        return codes

    # Accounts an admin manages.

    async def users(self, *, role: Role | None = None) -> list[Document]:
        store = self._sessions.users
        page = await store.page(
            filter=store.search_filter(role=role.value if role else None),
            request=PageRequest(first=USER_LIST_LIMIT),
        )
        return page.items

    async def create_user(
        self,
        *,
        email: str,
        password: str,
        role: Role,
        patient_id: ObjectId | None = None,
        doctor_id: ObjectId | None = None,
    ) -> Document:
        """An account for a validated email and password; a PATIENT or DOCTOR account
        is linked both ways to its (existing: else NotFound) patient or doctor record."""
        records = self._records()
        if patient_id is not None:
            patient_id = (await records.patients.get(id=patient_id))["_id"]
        if doctor_id is not None:
            doctor_id = (await records.doctors.get(id=doctor_id))["_id"]
        user = await self._sessions.users.create(
            email=email,
            password_hash=await hash_password(password, rounds=self._settings.bcrypt_rounds),
            role=role.value,
            patient_id=patient_id,
            doctor_id=doctor_id,
        )
        link = {"userId": str(user["_id"])}
        if patient_id is not None:
            await records.patients.update(id=patient_id, changes=link)
        elif doctor_id is not None:
            await records.doctors.update(id=doctor_id, changes=link)
        return user

    # Each of these ends every session of the account: its tokens carry the old state.

    async def disable(self, *, user_id: ObjectId) -> Document:
        return await self._sessions.end_all(user_id=user_id, disabled=True)

    async def reset_mfa(self, *, user_id: ObjectId) -> Document:
        return await self._sessions.end_all(user_id=user_id, mfa=None)

    async def change_role(self, *, user_id: ObjectId, role: Role) -> Document:
        return await self._sessions.end_all(user_id=user_id, role=role.value)
