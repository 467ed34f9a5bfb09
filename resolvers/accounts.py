from __future__ import annotations

import re

import strawberry

from accounts.registration import INVALID_VERIFICATION
from accounts.sessions import SecondFactorNeeded, Session
from auth.passwords import check_policy
from auth.roles import Principal, Role
from datasources.ids import parse_id
from errors import BadUserInput, Unauthenticated
from resolvers.common import Info
from schema import account as types
from schema import patient as patient_types
from schema import validation as check

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _email(value: str) -> str:
    email = check.text(value, "email", max_length=254).lower()
    if not _EMAIL.match(email):
        raise BadUserInput("email is not an email address", field="email")
    return email


def _payload(info: Info, session: Session) -> types.AuthPayload:
    return types.AuthPayload(
        access_token=session.access.token,
        refresh_token=session.refresh.token,
        expires_in=info.context.settings.access_token_ttl_s,
        user=types.User.from_document(session.user),
    )


def _principal(info: Info) -> Principal:
    principal = info.context.principal
    if principal is None:  # the field's permission already refused anonymous callers
        raise Unauthenticated("authentication required")
    return principal


async def resolve_me(info: Info) -> types.User | None:
    user = await info.context.accounts.me(user_id=_principal(info).user_id)
    return types.User.from_document(user)


async def resolve_users(info: Info, role: types.Role | None = None) -> list[types.User] | None:
    users = await info.context.accounts.users(role=Role(role.value) if role else None)
    return [types.User.from_document(document) for document in users]


async def resolve_register(
    info: Info, input: types.RegisterInput
) -> types.RegistrationReceived | None:
    accounts = info.context.accounts
    # Counted before anything else: invalid sign-ups use up the budget too.
    await accounts.count_sign_up(ip=info.context.client_ip)
    email = _email(input.email)
    check_policy(
        input.password, context_words=[email.split("@")[0], input.given_name, input.family_name]
    )
    patient_fields = patient_types.CreatePatientInput(
        given_name=input.given_name,
        family_name=input.family_name,
        birth_date=input.birth_date,
        sex=input.sex,
    ).to_document()
    message = await accounts.register(email=email, password=input.password, patient=patient_fields)
    return types.RegistrationReceived(message=message)


async def resolve_verify_email(info: Info, email: str, code: str) -> types.AuthPayload | None:
    if len(email) > 254 or len(code) > 64:
        raise Unauthenticated(INVALID_VERIFICATION)
    session = await info.context.accounts.verify_email(
        email=email.strip().lower(), code=code, ip=info.context.client_ip
    )
    return _payload(info, session)


async def resolve_login(
    info: Info,
    email: str,
    password: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
) -> types.LoginResult | None:
    if len(email) > 254:
        raise Unauthenticated("invalid email or password")
    outcome = await info.context.accounts.login(
        email=email.strip().lower(),
        password=password,
        ip=info.context.client_ip,
        totp_code=totp_code,
        recovery_code=recovery_code,
    )
    if isinstance(outcome, SecondFactorNeeded):
        return types.MfaRequired(
            message="enter the code from your authenticator app "
            "(totpCode) or a recovery code (recoveryCode)"
        )
    return _payload(info, outcome)


async def resolve_refresh_token(info: Info, refresh_token: str) -> types.AuthPayload | None:
    return _payload(info, await info.context.accounts.refresh(token=refresh_token))


async def resolve_logout(info: Info) -> bool | None:
    await info.context.accounts.logout(user_id=_principal(info).user_id)
    return True


async def resolve_change_password(
    info: Info, current_password: str, new_password: str
) -> bool | None:
    await info.context.accounts.change_password(
        user_id=_principal(info).user_id,
        current_password=current_password,
        new_password=new_password,
        ip=info.context.client_ip,
    )
    return True


async def resolve_enroll_mfa(info: Info) -> types.MfaEnrollment | None:
    enrollment = await info.context.accounts.enroll_mfa(user_id=_principal(info).user_id)
    return types.MfaEnrollment(
        secret=enrollment.secret, provisioning_uri=enrollment.provisioning_uri
    )


async def resolve_confirm_mfa(info: Info, code: str) -> types.RecoveryCodes | None:
    codes = await info.context.accounts.confirm_mfa(user_id=_principal(info).user_id, code=code)
    return types.RecoveryCodes(codes=codes)


async def resolve_create_user(info: Info, input: types.CreateUserInput) -> types.User | None:
    email = _email(input.email)
    check_policy(input.password, context_words=[email.split("@")[0]])
    role = Role(input.role.value)
    patient_id = doctor_id = None
    if role is Role.PATIENT:
        if not input.patient_id:
            raise BadUserInput("a PATIENT account needs patientId", field="patientId")
        patient_id = parse_id(input.patient_id, field="patientId")
    if role is Role.DOCTOR:
        if not input.doctor_id:
            raise BadUserInput("a DOCTOR account needs doctorId", field="doctorId")
        doctor_id = parse_id(input.doctor_id, field="doctorId")
    user = await info.context.accounts.create_user(
        email=email, password=input.password, role=role, patient_id=patient_id, doctor_id=doctor_id
    )
    return types.User.from_document(user)


async def resolve_disable_user(info: Info, id: strawberry.ID) -> types.User | None:
    return types.User.from_document(await info.context.accounts.disable(user_id=parse_id(id)))


async def resolve_reset_mfa(info: Info, id: strawberry.ID) -> types.User | None:
    return types.User.from_document(await info.context.accounts.reset_mfa(user_id=parse_id(id)))


async def resolve_change_user_role(
    info: Info, id: strawberry.ID, role: types.Role
) -> types.User | None:
    user = await info.context.accounts.change_role(user_id=parse_id(id), role=Role(role.value))
    return types.User.from_document(user)
