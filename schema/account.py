"""Accounts: registration, login with rotating refresh tokens, MFA, admin management."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, TypeAlias

import strawberry

from auth.roles import Role as RoleValue
from resolvers import accounts as resolve
from schema.enums import Sex

if TYPE_CHECKING:
    from datasources.documents import Document

# strawberry.enum registers the GraphQL enum on the class itself (and returns it).
strawberry.enum(RoleValue, name="Role")
Role: TypeAlias = RoleValue


def _optional_id(value: object) -> strawberry.ID | None:
    return strawberry.ID(str(value)) if value else None


@strawberry.type
class User:
    id: strawberry.ID
    email: str
    role: Role
    disabled: bool
    mfa_enabled: bool
    patient_id: strawberry.ID | None
    doctor_id: strawberry.ID | None
    created_at: datetime

    @classmethod
    def from_document(cls, document: Document) -> User:
        mfa = document.get("mfa") or {}
        return cls(
            id=strawberry.ID(str(document["_id"])),
            email=document["email"],
            role=RoleValue(document["role"]),
            disabled=document["disabled"],
            mfa_enabled=bool(mfa.get("confirmed")),
            patient_id=_optional_id(document.get("patientId")),
            doctor_id=_optional_id(document.get("doctorId")),
            created_at=document["createdAt"],
        )


@strawberry.type(description="Send accessToken as `Authorization: Bearer <token>`.")
class AuthPayload:
    access_token: str
    refresh_token: str
    expires_in: int = strawberry.field(description="Seconds until accessToken expires.")
    user: User


@strawberry.type(
    description="A sign-up was received. The answer is the same whether or not the address "
    "already has an account; the address's owner is told by email which it was."
)
class RegistrationReceived:
    message: str


@strawberry.type(
    description="Password accepted; now send login again with totpCode or recoveryCode."
)
class MfaRequired:
    message: str


@strawberry.type
class MfaEnrollment:
    secret: str
    provisioning_uri: str = strawberry.field(description="otpauth:// URI for a QR code.")


@strawberry.type(description="Shown once: each code signs in once instead of a TOTP code.")
class RecoveryCodes:
    codes: list[str]


LoginResult = Annotated[AuthPayload | MfaRequired, strawberry.union("LoginResult")]


@strawberry.input
class RegisterInput:
    email: str
    password: str
    given_name: str
    family_name: str
    birth_date: date
    sex: Sex


@strawberry.input
class CreateUserInput:
    email: str
    password: str
    role: Role
    patient_id: strawberry.ID | None = None
    doctor_id: strawberry.ID | None = None


@strawberry.type
class AccountQueries:
    me: User | None = strawberry.field(resolver=resolve.resolve_me)
    users: list[User] | None = strawberry.field(resolver=resolve.resolve_users)


@strawberry.type
class AccountMutations:
    register: RegistrationReceived | None = strawberry.field(
        resolver=resolve.resolve_register,
        description="Patients sign themselves up. Nothing is created until the address is "
        "confirmed: a one-time code is emailed to it, and verifyEmail with that code "
        "creates the account and its patient record and signs in. Each call counts against "
        "a per-address budget (RATE_LIMITED with retryAfter once spent).",
    )
    verify_email: AuthPayload | None = strawberry.field(
        resolver=resolve.resolve_verify_email,
        description="Finishes a sign-up with the code emailed by register (valid 24 hours "
        "by default, works once). Throttled like login; a wrong, used or expired code, and "
        "an address with no pending sign-up, all get the same answer.",
    )
    login: LoginResult | None = strawberry.field(resolver=resolve.resolve_login)
    refresh_token: AuthPayload | None = strawberry.field(
        resolver=resolve.resolve_refresh_token,
        description="Exchanges a refresh token for new tokens; each refresh token works "
        "once, and reusing one ends the whole session.",
    )
    logout: bool | None = strawberry.field(
        resolver=resolve.resolve_logout,
        description="Ends every session of the account: all its tokens stop working.",
    )
    change_password: bool | None = strawberry.field(resolver=resolve.resolve_change_password)
    enroll_mfa: MfaEnrollment | None = strawberry.field(resolver=resolve.resolve_enroll_mfa)
    confirm_mfa: RecoveryCodes | None = strawberry.field(resolver=resolve.resolve_confirm_mfa)
    create_user: User | None = strawberry.field(resolver=resolve.resolve_create_user)
    disable_user: User | None = strawberry.field(resolver=resolve.resolve_disable_user)
    reset_mfa: User | None = strawberry.field(resolver=resolve.resolve_reset_mfa)
    change_user_role: User | None = strawberry.field(resolver=resolve.resolve_change_user_role)
