from __future__ import annotations

import re

import strawberry

from accounts.registration import INVALID_VERIFICATION, RegistrationService
from accounts.sessions import SecondFactorNeeded, Session
from auth import mfa
from auth.passwords import check_policy, hash_password, verify_password
from auth.roles import Role
from auth.throttle import RegistrationThrottle
from datasources.ids import parse_id
from datasources.outbox import Outbox
from datasources.pagination import PageRequest
from datasources.registrations import PendingRegistrations
from errors import BadUserInput, Conflict, Unauthenticated
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


def _principal(info: Info):
    principal = info.context.principal
    if principal is None:  # the field's permission already refused anonymous callers
        raise Unauthenticated("authentication required")
    return principal


async def resolve_me(info: Info) -> types.User | None:
    user = await info.context.sessions.users.get(id=_principal(info).user_id)
    return types.User.from_document(user)


async def resolve_users(info: Info, role: types.Role | None = None) -> list[types.User] | None:
    store = info.context.sessions.users
    page = await store.page(
        filter=store.search_filter(role=role.value if role else None),
        request=PageRequest(first=500),
    )
    return [types.User.from_document(document) for document in page.items]


def _registration(info: Info) -> RegistrationService:
    context = info.context
    assert context.system_sources is not None
    db, settings = context.sessions.users.db, context.settings
    return RegistrationService(
        sessions=context.sessions,
        system=context.system_sources,
        pending=PendingRegistrations(db),
        outbox=Outbox(db),
        throttle=RegistrationThrottle(
            context.redis,
            per_ip=settings.registrations_per_ip,
            window_s=settings.registration_window_s,
        ),
        settings=settings,
    )


async def resolve_register(
    info: Info, input: types.RegisterInput
) -> types.RegistrationReceived | None:
    registration = _registration(info)
    # Counted before anything else: invalid sign-ups use up the budget too.
    await registration.throttle.attempt(ip=info.context.client_ip)
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
    message = await registration.register(
        email=email, password=input.password, patient=patient_fields
    )
    return types.RegistrationReceived(message=message)


async def resolve_verify_email(info: Info, email: str, code: str) -> types.AuthPayload | None:
    if len(email) > 254 or len(code) > 64:
        raise Unauthenticated(INVALID_VERIFICATION)
    session = await _registration(info).verify(
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
    outcome = await info.context.sessions.login(
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
    return _payload(info, await info.context.sessions.refresh(token=refresh_token))


async def resolve_logout(info: Info) -> bool | None:
    await info.context.sessions.end_all(user_id=_principal(info).user_id)
    return True


async def resolve_change_password(
    info: Info, current_password: str, new_password: str
) -> bool | None:
    principal, sessions = _principal(info), info.context.sessions
    user = await sessions.users.get(id=principal.user_id)
    await sessions.throttle.attempt(email=user["email"], ip=info.context.client_ip)
    rounds = info.context.settings.bcrypt_rounds
    if not await verify_password(current_password, user["passwordHash"], rounds=rounds):
        raise Unauthenticated("current password is wrong")
    await sessions.throttle.succeeded(email=user["email"], ip=info.context.client_ip)
    check_policy(new_password, context_words=[user["email"].split("@")[0]], field="newPassword")
    await sessions.end_all(
        user_id=principal.user_id, passwordHash=await hash_password(new_password, rounds=rounds)
    )
    return True


async def resolve_enroll_mfa(info: Info) -> types.MfaEnrollment | None:
    principal, users = _principal(info), info.context.sessions.users
    user = await users.get(id=principal.user_id)
    if (user.get("mfa") or {}).get("confirmed"):
        raise Conflict("multi-factor authentication is already set up; an admin can reset it")
    secret = mfa.new_secret()
    await users.change(
        id=principal.user_id, changes={"mfa": {"secret": secret, "confirmed": False}}, revoke=False
    )
    return types.MfaEnrollment(
        secret=secret, provisioning_uri=mfa.provisioning_uri(secret, user["email"])
    )


async def resolve_confirm_mfa(info: Info, code: str) -> types.RecoveryCodes | None:
    principal, sessions = _principal(info), info.context.sessions
    user = await sessions.users.get(id=principal.user_id)
    state = user.get("mfa") or {}
    if not state.get("secret") or state.get("confirmed"):
        raise Conflict("start with enrollMfa")
    step = mfa.matching_step(state["secret"], code)
    if step is None:
        raise BadUserInput("the code does not match; check the device's clock", field="code")
    codes, hashes = mfa.new_recovery_codes()
    # Sessions from before the second factor end: sign in again with the code.
    await sessions.end_all(
        user_id=principal.user_id,
        mfa={
            "secret": state["secret"],
            "confirmed": True,
            "recoveryCodes": hashes,
            "lastStep": step,
        },
    )
    return types.RecoveryCodes(codes=codes)


async def resolve_create_user(info: Info, input: types.CreateUserInput) -> types.User | None:
    email = _email(input.email)
    check_policy(input.password, context_words=[email.split("@")[0]])
    role = Role(input.role.value)
    system = info.context.system_sources
    assert system is not None
    patient_id = doctor_id = None
    if role is Role.PATIENT:
        if not input.patient_id:
            raise BadUserInput("a PATIENT account needs patientId", field="patientId")
        patient_id = (await system.patients.get(id=parse_id(input.patient_id, field="patientId")))[
            "_id"
        ]
    if role is Role.DOCTOR:
        if not input.doctor_id:
            raise BadUserInput("a DOCTOR account needs doctorId", field="doctorId")
        doctor_id = (await system.doctors.get(id=parse_id(input.doctor_id, field="doctorId")))[
            "_id"
        ]
    user = await info.context.sessions.users.create(
        email=email,
        password_hash=await hash_password(
            input.password, rounds=info.context.settings.bcrypt_rounds
        ),
        role=role.value,
        patient_id=patient_id,
        doctor_id=doctor_id,
    )
    linked_store = system.patients if patient_id else system.doctors if doctor_id else None
    if linked_store is not None:
        await linked_store.update(id=patient_id or doctor_id, changes={"userId": str(user["_id"])})
    return types.User.from_document(user)


async def _end_sessions_with(info: Info, id: strawberry.ID, **changes) -> types.User:
    user = await info.context.sessions.end_all(user_id=parse_id(id), **changes)
    return types.User.from_document(user)


async def resolve_disable_user(info: Info, id: strawberry.ID) -> types.User | None:
    return await _end_sessions_with(info, id, disabled=True)


async def resolve_reset_mfa(info: Info, id: strawberry.ID) -> types.User | None:
    return await _end_sessions_with(info, id, mfa=None)


async def resolve_change_user_role(
    info: Info, id: strawberry.ID, role: types.Role
) -> types.User | None:
    return await _end_sessions_with(info, id, role=Role(role.value).value)
