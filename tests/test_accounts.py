"""Account flows through the GraphQL API: registration, password policy, login, token
refresh and logout, multi-factor authentication, login throttling and user management."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pyotp
import pytest
from bson import ObjectId

import auth.passwords
from auth.passwords import hash_password
from auth.roles import Role
from datasources.scope import AccessScope
from datasources.users import UserStore
from tests.conftest import http_client
from tests.factories import create_doctor, create_patient
from tests.support import issue_token

PASSWORD = "lantern-orchard-velvet"
NEW_PASSWORD = "granite-meadow-falcon"
LOCAL_PART = "margaret.hamilton"
EMAIL = f"{LOCAL_PART}@example.org"
INVALID_LOGIN = "invalid email or password"

# --- GraphQL documents ---------------------------------------------------------------

REGISTER = """
mutation($input: RegisterInput!) { register(input: $input) { message } }"""

VERIFY_EMAIL = """
mutation($email: String!, $code: String!) {
  verifyEmail(email: $email, code: $code) {
    accessToken refreshToken expiresIn user { id email role patientId mfaEnabled }
  }
}"""

LOGIN = """
mutation($email: String!, $password: String!, $totp: String, $recovery: String) {
  login(email: $email, password: $password, totpCode: $totp, recoveryCode: $recovery) {
    __typename
    ... on AuthPayload { accessToken refreshToken user { id role mfaEnabled } }
    ... on MfaRequired { message }
  }
}"""

REFRESH = """
mutation($token: String!) { refreshToken(refreshToken: $token) { accessToken refreshToken } }"""

CHANGE_PASSWORD = """
mutation($current: String!, $new: String!) {
  changePassword(currentPassword: $current, newPassword: $new)
}"""

CREATE_USER = """
mutation($input: CreateUserInput!) {
  createUser(input: $input) { id email role disabled mfaEnabled patientId doctorId }
}"""

ME = "{ me { id email role patientId mfaEnabled } }"
USER_EMAILS = "{ users { email } }"

# --- passwords -----------------------------------------------------------------------

_WORDS = (
    "amber basalt cobalt delta ember fjord garnet harbor indigo juniper kestrel lagoon "
    "meridian nebula obsidian prairie quartz raven sierra tundra umber violet willow xenon "
    "yarrow zephyr"
).split()


def passphrase(length: int) -> str:
    """Unrelated words, cut to exactly `length` characters."""
    text = "-".join(_WORDS * 3)
    assert len(text) >= length
    return text[:length]


# --- helpers -------------------------------------------------------------------------


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.org"


def register_input(email: str, password: str) -> dict:
    return {
        "input": {
            "email": email,
            "password": password,
            "givenName": "Ada",
            "familyName": "Lovelace",
            "birthDate": "1980-12-10",
            "sex": "FEMALE",
        }
    }


async def verification_code(services, email: str) -> str:
    """The newest code the outbox holds for `email` (what the mail gateway would send)."""
    [mail] = (
        await services.db["outbox"]
        .find({"to": email.strip().lower(), "template": "verify-email"})
        .sort("createdAt", -1)
        .limit(1)
        .to_list()
    )
    return mail["data"]["code"]


async def register(anonymous, services, email: str, password: str = PASSWORD) -> dict:
    """Sign up and confirm the address with the emailed code: the AuthPayload."""
    received = (await anonymous.data(REGISTER, register_input(email, password)))["register"]
    assert received["message"], received
    code = await verification_code(services, email)
    return (await anonymous.data(VERIFY_EMAIL, {"email": email, "code": code}))["verifyEmail"]


async def login(anonymous, email: str, password: str, *, totp=None, recovery=None) -> dict:
    """The whole response of one login mutation."""
    return await anonymous.post(
        LOGIN, {"email": email, "password": password, "totp": totp, "recovery": recovery}
    )


async def login_tokens(anonymous, email: str, password: str = PASSWORD, **codes) -> dict:
    body = await login(anonymous, email, password, **codes)
    assert "errors" not in body, body
    assert body["data"]["login"]["__typename"] == "AuthPayload", body
    return body["data"]["login"]


async def login_error(anonymous, email: str, password: str, **codes) -> dict:
    body = await login(anonymous, email, password, **codes)
    assert body["data"] == {"login": None}, body
    [error] = body["errors"]
    return error


def code_of(error: dict) -> str:
    return error["extensions"]["code"]


def identity(error: dict) -> tuple:
    """What a client can tell an error by: its message and extensions."""
    return error["message"], error["extensions"]


async def me(app, token: str) -> dict:
    async with http_client(app, token) as signed_in:
        return await signed_in.post(ME)


async def assert_token_works(app, token: str) -> dict:
    body = await me(app, token)
    assert "errors" not in body, body
    return body["data"]["me"]


async def assert_token_dead(app, token: str) -> None:
    body = await me(app, token)
    assert body["data"] == {"me": None}, body
    assert [code_of(error) for error in body["errors"]] == ["UNAUTHENTICATED"], body


async def assert_refresh_dead(anonymous, refresh_token: str) -> None:
    body = await anonymous.post(REFRESH, {"token": refresh_token})
    assert body["data"] == {"refreshToken": None}, body
    assert [code_of(error) for error in body["errors"]] == ["UNAUTHENTICATED"], body


async def user_emails(client) -> list[str]:
    return [user["email"] for user in (await client.data(USER_EMAILS))["users"]]


@pytest.fixture
def users(services) -> UserStore:
    return UserStore(services.db, AccessScope.system())


async def make_account(users, email: str, role: Role = Role.PHARMACIST, **links) -> dict:
    """An account with PASSWORD, made directly in the store."""
    return await users.create(
        email=email,
        password_hash=await hash_password(PASSWORD, rounds=4),
        role=role.value,
        **links,
    )


# --- registration --------------------------------------------------------------------


async def test_register_creates_a_patient_account_with_its_own_record(
    app, settings, anonymous, client, services
):
    other = await create_patient(client, givenName="Grace", familyName="Hopper")
    payload = await register(anonymous, services, "  Ada.Lovelace@Example.org ")

    assert payload["accessToken"] and payload["refreshToken"]
    assert payload["expiresIn"] == settings.access_token_ttl_s
    user = payload["user"]
    assert user["email"] == "ada.lovelace@example.org"
    assert user["role"] == "PATIENT" and user["patientId"] and not user["mfaEnabled"]

    async with http_client(app, payload["accessToken"]) as patient:
        own = await patient.data(ME)
        assert own["me"]["patientId"] == user["patientId"]
        record = await patient.data(
            "query($id: ID!) { patient(id: $id) { id givenName familyName } }",
            {"id": user["patientId"]},
        )
        assert record["patient"] == {
            "id": user["patientId"],
            "givenName": "Ada",
            "familyName": "Lovelace",
        }
        refused = await patient.error(
            "query($id: ID!) { patient(id: $id) { id } }", {"id": other["id"]}
        )
        assert code_of(refused) == "NOT_FOUND"
        listed = await patient.data("{ patients { totalCount nodes { id } } }")
        assert listed["patients"]["nodes"] == [{"id": user["patientId"]}]

    linked = await client.data(
        "query($id: ID!) { patient(id: $id) { userId } }", {"id": user["patientId"]}
    )
    assert linked["patient"]["userId"] == user["id"]


@pytest.mark.parametrize("second_email", [EMAIL, EMAIL.upper(), f"  {EMAIL}  "])
async def test_registering_an_email_twice_is_received_and_leaves_one_account(
    anonymous, client, services, second_email
):
    await register(anonymous, services, EMAIL)
    again = await anonymous.post(REGISTER, register_input(second_email, NEW_PASSWORD))
    assert "errors" not in again and again["data"]["register"]["message"]
    assert (await client.data("{ patients { totalCount } }"))["patients"]["totalCount"] == 1
    assert (await user_emails(client)).count(EMAIL) == 1
    await login_tokens(anonymous, EMAIL, PASSWORD)  # the owner's password still works


async def test_concurrent_verifications_of_one_code_leave_one_account_and_one_patient(
    anonymous, client, services
):
    await anonymous.data(REGISTER, register_input(EMAIL, PASSWORD))
    code = await verification_code(services, EMAIL)
    bodies = await asyncio.gather(
        *(anonymous.post(VERIFY_EMAIL, {"email": EMAIL, "code": code}) for _ in range(2))
    )
    outcomes = sorted(
        "ok" if "errors" not in body else code_of(body["errors"][0]) for body in bodies
    )
    assert outcomes == ["UNAUTHENTICATED", "ok"], bodies
    assert (await client.data("{ patients { totalCount } }"))["patients"]["totalCount"] == 1
    assert (await user_emails(client)).count(EMAIL) == 1


# --- password policy -----------------------------------------------------------------

POLICY_CASES = [
    pytest.param(passphrase(11), False, id="11-characters"),
    pytest.param(passphrase(12), True, id="12-characters"),
    pytest.param(passphrase(64), True, id="64-characters"),
    pytest.param(passphrase(256), True, id="256-characters"),
    pytest.param(passphrase(257), False, id="257-characters"),
    pytest.param("password1234", False, id="common-password1234"),
    pytest.param("qwertyuiop123", False, id="common-qwertyuiop123"),
    pytest.param("123456789012", False, id="common-123456789012"),
    pytest.param("passwordpassword", False, id="common-passwordpassword"),
    pytest.param(f"apollo {LOCAL_PART} 1969", False, id="contains-email-local-part"),
    pytest.param(f"apollo {LOCAL_PART.upper()} 1969", False, id="contains-local-part-upper"),
]


async def _register_with(app, services, client, anonymous, users, password):
    body = await anonymous.post(REGISTER, register_input(EMAIL, password))
    if "errors" not in body:  # finish the sign-up, so the new password can be tried
        code = await verification_code(services, EMAIL)
        await anonymous.data(VERIFY_EMAIL, {"email": EMAIL, "code": code})
    return body


async def _create_user_with(app, services, client, anonymous, users, password):
    return await client.post(
        CREATE_USER, {"input": {"email": EMAIL, "password": password, "role": "ANALYST"}}
    )


async def _change_password_to(app, services, client, anonymous, users, password):
    account = await make_account(users, EMAIL)
    token = services.tokens.issue_access(
        user_id=str(account["_id"]),
        role=account["role"],
        version=1,
        mfa=True,
        session="test-session",
    ).token
    async with http_client(app, token) as signed_in:
        body = await signed_in.post(CHANGE_PASSWORD, {"current": PASSWORD, "new": password})
    if "errors" in body:  # a refused new password leaves the session alone
        await assert_token_works(app, token)
    return body


PASSWORD_ENTRY_POINTS = {
    "register": _register_with,
    "createUser": _create_user_with,
    "changePassword": _change_password_to,
}


@pytest.mark.parametrize("entry_point", PASSWORD_ENTRY_POINTS)
@pytest.mark.parametrize(("password", "accepted"), POLICY_CASES)
async def test_password_policy(
    app, services, client, anonymous, users, entry_point, password, accepted
):
    body = await PASSWORD_ENTRY_POINTS[entry_point](
        app, services, client, anonymous, users, password
    )
    if accepted:
        assert "errors" not in body, body
        assert body["data"][entry_point]
        await login_tokens(anonymous, EMAIL, password)
    else:
        assert "errors" in body, f"password {password!r} was accepted: {body['data']}"
        [error] = body["errors"]
        assert code_of(error) == "BAD_USER_INPUT", error
        assert error["extensions"]["field"] in {"password", "newPassword"}
        if entry_point != "changePassword":
            assert EMAIL not in await user_emails(client)


async def test_passwords_longer_than_72_bytes_are_not_truncated(anonymous, services):
    shared = passphrase(80)
    first, second = (
        shared + "-first-variant".ljust(20, "x"),
        shared + "-second-variant".ljust(20, "y"),
    )
    assert len(first) == len(second) == 100 and first[:80] == second[:80]
    await register(anonymous, services, "alpha@example.org", first)
    await register(anonymous, services, "beta@example.org", second)

    assert code_of(await login_error(anonymous, "alpha@example.org", second)) == "UNAUTHENTICATED"
    assert code_of(await login_error(anonymous, "beta@example.org", first)) == "UNAUTHENTICATED"
    await login_tokens(anonymous, "alpha@example.org", first)
    await login_tokens(anonymous, "beta@example.org", second)


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("Grüße aus Köln — 東京タワー 🌸", id="mixed-scripts"),
        pytest.param("пароль-для-больницы", id="cyrillic"),
        pytest.param(
            "東京タワーから富士山を眺めて桜の花びらが舞う春の朝に温かいお茶を飲む",
            id="cjk-over-72-bytes",
        ),
    ],
)
async def test_non_ascii_passphrases_work(anonymous, services, password):
    await register(anonymous, services, EMAIL, password)
    await login_tokens(anonymous, EMAIL, password)
    nearly = password[:-1] + ("x" if password[-1] != "x" else "y")
    assert code_of(await login_error(anonymous, EMAIL, nearly)) == "UNAUTHENTICATED"


# --- login ---------------------------------------------------------------------------


@pytest.fixture
def bcrypt_checks(monkeypatch) -> list[str]:
    """The hash every bcrypt check compared against, in order."""
    checked: list[str] = []
    real_verify = auth.passwords._verify

    def spy(password: str, hashed: str) -> bool:
        checked.append(hashed)
        return real_verify(password, hashed)

    monkeypatch.setattr(auth.passwords, "_verify", spy)
    return checked


async def test_wrong_password_and_unknown_email_are_indistinguishable(
    anonymous, users, bcrypt_checks
):
    await make_account(users, EMAIL)

    wrong_password = await login_error(anonymous, EMAIL, NEW_PASSWORD)
    assert len(bcrypt_checks) == 1
    unknown_email = await login_error(anonymous, "nobody@example.org", NEW_PASSWORD)
    assert len(bcrypt_checks) == 2

    assert identity(wrong_password) == identity(unknown_email)
    assert wrong_password["message"] == INVALID_LOGIN
    assert code_of(wrong_password) == "UNAUTHENTICATED"
    # The unknown account was checked against a hash of the same cost as a real one.
    real_hash, dummy_hash = bcrypt_checks
    assert dummy_hash != real_hash
    assert dummy_hash[:7] == real_hash[:7] == "$2b$04$"


async def test_login_ignores_email_case_and_surrounding_spaces(anonymous, users):
    await make_account(users, EMAIL)
    await login_tokens(anonymous, f"  {EMAIL.upper()} ")


# --- refresh, logout, password change ------------------------------------------------


async def refresh(anonymous, refresh_token: str) -> dict:
    return (await anonymous.data(REFRESH, {"token": refresh_token}))["refreshToken"]


async def test_refresh_rotates_both_tokens(app, anonymous, users):
    await make_account(users, EMAIL)
    first = await login_tokens(anonymous, EMAIL)
    second = await refresh(anonymous, first["refreshToken"])
    assert second["accessToken"] != first["accessToken"]
    assert second["refreshToken"] != first["refreshToken"]
    await assert_token_works(app, second["accessToken"])
    third = await refresh(anonymous, second["refreshToken"])
    await assert_token_works(app, third["accessToken"])


async def test_reusing_a_refresh_token_revokes_its_whole_family(app, anonymous, users):
    await make_account(users, EMAIL)
    other_session = await login_tokens(anonymous, EMAIL)
    first = await login_tokens(anonymous, EMAIL)
    second = await refresh(anonymous, first["refreshToken"])

    await assert_refresh_dead(anonymous, first["refreshToken"])  # replayed
    await assert_refresh_dead(anonymous, second["refreshToken"])  # newest of the family
    # Another session (another family) of the same account is not affected.
    await refresh(anonymous, other_session["refreshToken"])


async def test_a_replayed_refresh_token_also_ends_its_sessions_access_tokens(app, anonymous, users):
    """Reuse means the session is compromised: the access tokens it issued (the
    owner's and the thief's) stop at once, not when they expire; other sessions live."""
    await make_account(users, EMAIL)
    other_session = await login_tokens(anonymous, EMAIL)
    first = await login_tokens(anonymous, EMAIL)
    second = await refresh(anonymous, first["refreshToken"])
    await assert_token_works(app, second["accessToken"])

    await assert_refresh_dead(anonymous, first["refreshToken"])  # replayed

    await assert_token_dead(app, first["accessToken"])
    await assert_token_dead(app, second["accessToken"])
    await assert_token_works(app, other_session["accessToken"])
    # A later replay of another of the family's tokens keeps the account usable.
    await assert_refresh_dead(anonymous, second["refreshToken"])
    fresh = await login_tokens(anonymous, EMAIL)
    await assert_token_works(app, fresh["accessToken"])


async def test_access_token_is_refused_as_a_refresh_token(anonymous, users):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    await assert_refresh_dead(anonymous, session["accessToken"])
    body = await anonymous.post(REFRESH, {"token": session["accessToken"]})
    assert body["errors"][0]["message"] == "not a refresh token"


async def test_logout_ends_every_session(app, anonymous, users):
    await make_account(users, EMAIL)
    sessions = [await login_tokens(anonymous, EMAIL) for _ in range(2)]
    async with http_client(app, sessions[0]["accessToken"]) as signed_in:
        assert await signed_in.data("mutation { logout }") == {"logout": True}
    for session in sessions:
        await assert_token_dead(app, session["accessToken"])
        await assert_refresh_dead(anonymous, session["refreshToken"])
    await login_tokens(anonymous, EMAIL)  # signing in again works


async def test_change_password(app, anonymous, users):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    async with http_client(app, session["accessToken"]) as signed_in:
        error = await signed_in.error(
            CHANGE_PASSWORD, {"current": "not-the-password", "new": NEW_PASSWORD}
        )
        assert code_of(error) == "UNAUTHENTICATED"
        await assert_token_works(app, session["accessToken"])  # a wrong guess ends nothing

        changed = await signed_in.data(CHANGE_PASSWORD, {"current": PASSWORD, "new": NEW_PASSWORD})
        assert changed == {"changePassword": True}

    await assert_token_dead(app, session["accessToken"])
    await assert_refresh_dead(anonymous, session["refreshToken"])
    await login_tokens(anonymous, EMAIL, NEW_PASSWORD)
    assert identity(await login_error(anonymous, EMAIL, PASSWORD)) == identity(
        await login_error(anonymous, "nobody@example.org", PASSWORD)
    )


# --- multi-factor authentication -----------------------------------------------------


def wrong_code(secret: str) -> str:
    """A six-digit code that no accepted time step (now, one before, one after) has."""
    totp, now = pyotp.TOTP(secret), time.time()
    valid = {totp.at(now + offset) for offset in (-60, -30, 0, 30, 60)}
    candidate = int(totp.at(now))
    while f"{candidate:06d}" in valid:
        candidate = (candidate + 1) % 1_000_000
    return f"{candidate:06d}"


def unused_code(secret: str, used: set[str]) -> str:
    """A currently accepted code (this step or the next) that is not in `used`."""
    totp, now = pyotp.TOTP(secret), time.time()
    return next(code for code in (totp.at(now), totp.at(now + 30)) if code not in used)


async def enroll(app, token: str) -> tuple[str, list[str], str]:
    """Enrol and confirm MFA; returns (secret, recovery codes, the code used to confirm)."""
    async with http_client(app, token) as signed_in:
        enrollment = (await signed_in.data("mutation { enrollMfa { secret provisioningUri } }"))[
            "enrollMfa"
        ]
        secret = enrollment["secret"]
        code = pyotp.TOTP(secret).now()
        confirmed = await signed_in.data(
            "mutation($code: String!) { confirmMfa(code: $code) { codes } }", {"code": code}
        )
    return secret, confirmed["confirmMfa"]["codes"], code


@pytest.fixture
async def mfa_account(app, anonymous, users) -> dict:
    account = await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    secret, recovery_codes, confirm_code = await enroll(app, session["accessToken"])
    return {
        "id": str(account["_id"]),
        "secret": secret,
        "recovery_codes": recovery_codes,
        "used_codes": {confirm_code},
    }


async def test_enrolling_and_confirming_mfa(app, anonymous, users):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    async with http_client(app, session["accessToken"]) as signed_in:
        enrollment = (await signed_in.data("mutation { enrollMfa { secret provisioningUri } }"))[
            "enrollMfa"
        ]
        secret, uri = enrollment["secret"], enrollment["provisioningUri"]
        assert uri.startswith("otpauth://totp/")
        assert f"secret={secret}" in uri and "issuer=CareGraph" in uri

        confirm = "mutation($code: String!) { confirmMfa(code: $code) { codes } }"
        error = await signed_in.error(confirm, {"code": wrong_code(secret)})
        assert code_of(error) == "BAD_USER_INPUT"

        codes = (await signed_in.data(confirm, {"code": pyotp.TOTP(secret).now()}))["confirmMfa"][
            "codes"
        ]
        assert len(codes) == len(set(codes)) == 10

    # Sessions from before the second factor end.
    await assert_token_dead(app, session["accessToken"])
    await assert_refresh_dead(anonymous, session["refreshToken"])


async def test_login_with_mfa_needs_a_second_factor(anonymous, mfa_account):
    body = await login(anonymous, EMAIL, PASSWORD)
    assert "errors" not in body, body
    assert body["data"]["login"]["__typename"] == "MfaRequired"
    assert "accessToken" not in body["data"]["login"]

    code = unused_code(mfa_account["secret"], mfa_account["used_codes"])
    session = await login_tokens(anonymous, EMAIL, totp=code)
    assert session["user"]["mfaEnabled"] is True


async def test_mfa_cannot_be_enrolled_again_while_active(app, anonymous, mfa_account):
    code = unused_code(mfa_account["secret"], mfa_account["used_codes"])
    session = await login_tokens(anonymous, EMAIL, totp=code)
    async with http_client(app, session["accessToken"]) as signed_in:
        error = await signed_in.error("mutation { enrollMfa { secret } }")
    assert code_of(error) == "CONFLICT"


async def test_an_admin_acts_as_admin_only_after_a_second_factor(app, anonymous, client):
    await client.data(
        CREATE_USER, {"input": {"email": EMAIL, "password": PASSWORD, "role": "ADMIN"}}
    )
    before = await login_tokens(anonymous, EMAIL)
    async with http_client(app, before["accessToken"]) as admin:
        error = await admin.error("{ patients { totalCount } }")
        assert (code_of(error), error["extensions"].get("reason")) == ("FORBIDDEN", "MFA_REQUIRED")
    refreshed = await refresh(anonymous, before["refreshToken"])  # no second factor either
    async with http_client(app, refreshed["accessToken"]) as admin:
        assert code_of(await admin.error("{ patients { totalCount } }")) == "FORBIDDEN"

    secret, _, confirm_code = await enroll(app, refreshed["accessToken"])
    after = await login_tokens(anonymous, EMAIL, totp=unused_code(secret, {confirm_code}))
    async with http_client(app, after["accessToken"]) as admin:
        assert (await admin.data("{ patients { totalCount } }"))["patients"]["totalCount"] == 0
    # The second factor survives a refresh.
    refreshed = await refresh(anonymous, after["refreshToken"])
    async with http_client(app, refreshed["accessToken"]) as admin:
        assert (await admin.data("{ patients { totalCount } }"))["patients"]["totalCount"] == 0


async def test_wrong_password_with_a_valid_code_gives_the_generic_error(anonymous, mfa_account):
    code = unused_code(mfa_account["secret"], mfa_account["used_codes"])
    error = await login_error(anonymous, EMAIL, NEW_PASSWORD, totp=code)
    assert identity(error) == identity(await login_error(anonymous, "x@example.org", "y" * 12))


async def test_wrong_totp_code_is_refused(anonymous, mfa_account):
    error = await login_error(anonymous, EMAIL, PASSWORD, totp=wrong_code(mfa_account["secret"]))
    assert code_of(error) == "UNAUTHENTICATED"


NOT_A_CODE = ["１２３４５６", "12345é", "⅌", "ꞝ vï", "\x00"]  # fullwidth digits, non-ASCII


@pytest.mark.parametrize("code", NOT_A_CODE)
async def test_a_code_that_is_not_ascii_digits_is_refused_at_login(anonymous, mfa_account, code):
    # Found by tests/test_fuzz.py: compare_digest raised TypeError for non-ASCII text.
    error = await login_error(anonymous, EMAIL, PASSWORD, totp=code)
    assert code_of(error) == "UNAUTHENTICATED"


@pytest.mark.parametrize("code", NOT_A_CODE)
async def test_a_code_that_is_not_ascii_digits_does_not_confirm_mfa(app, anonymous, users, code):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    async with http_client(app, session["accessToken"]) as signed_in:
        await signed_in.data("mutation { enrollMfa { secret } }")
        error = await signed_in.error(
            "mutation($code: String!) { confirmMfa(code: $code) { codes } }", {"code": code}
        )
    assert (code_of(error), error["extensions"].get("field")) == ("BAD_USER_INPUT", "code")


async def test_a_totp_code_signs_in_only_once(anonymous, mfa_account):
    code = unused_code(mfa_account["secret"], mfa_account["used_codes"])
    await login_tokens(anonymous, EMAIL, totp=code)
    assert code_of(await login_error(anonymous, EMAIL, PASSWORD, totp=code)) == "UNAUTHENTICATED"


async def test_the_code_used_to_confirm_mfa_cannot_sign_in(anonymous, mfa_account):
    [confirm_code] = mfa_account["used_codes"]
    error = await login_error(anonymous, EMAIL, PASSWORD, totp=confirm_code)
    assert code_of(error) == "UNAUTHENTICATED"


async def test_an_earlier_totp_code_is_refused_after_a_later_one_was_used(anonymous, mfa_account):
    # RFC 6238 section 5.2: once a code was accepted, no code of that or an earlier
    # time step may be accepted again. The confirm code is of this time step; sign in
    # with the next step's code, then replay the confirm code while it is still fresh.
    [confirm_code] = mfa_account["used_codes"]
    totp = pyotp.TOTP(mfa_account["secret"])
    later = totp.at(time.time() + 30)
    assert later != confirm_code
    await login_tokens(anonymous, EMAIL, totp=later)
    assert totp.verify(confirm_code, valid_window=1)  # still inside the accepted window
    error = await login_error(anonymous, EMAIL, PASSWORD, totp=confirm_code)
    assert code_of(error) == "UNAUTHENTICATED"


async def test_a_recovery_code_works_once(anonymous, mfa_account):
    first, second = mfa_account["recovery_codes"][:2]
    await login_tokens(anonymous, EMAIL, recovery=first)
    assert code_of(await login_error(anonymous, EMAIL, PASSWORD, recovery=first)) == (
        "UNAUTHENTICATED"
    )
    await login_tokens(anonymous, EMAIL, recovery=second)  # the others still work


async def test_reset_mfa_removes_mfa_and_ends_the_users_sessions(
    app, anonymous, client, mfa_account
):
    session = await login_tokens(
        anonymous, EMAIL, totp=unused_code(mfa_account["secret"], mfa_account["used_codes"])
    )
    reset = await client.data(
        "mutation($id: ID!) { resetMfa(id: $id) { mfaEnabled } }", {"id": mfa_account["id"]}
    )
    assert reset == {"resetMfa": {"mfaEnabled": False}}
    await assert_token_dead(app, session["accessToken"])
    await assert_refresh_dead(anonymous, session["refreshToken"])
    after = await login_tokens(anonymous, EMAIL)  # no second factor asked
    assert after["user"]["mfaEnabled"] is False


async def test_disable_user_makes_login_fail_with_the_generic_error(app, anonymous, client, users):
    account = await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    disabled = await client.data(
        "mutation($id: ID!) { disableUser(id: $id) { disabled } }", {"id": str(account["_id"])}
    )
    assert disabled == {"disableUser": {"disabled": True}}

    refused = await login_error(anonymous, EMAIL, PASSWORD)
    assert identity(refused) == identity(await login_error(anonymous, EMAIL, NEW_PASSWORD))
    assert refused["message"] == INVALID_LOGIN
    await assert_token_dead(app, session["accessToken"])
    await assert_refresh_dead(anonymous, session["refreshToken"])


# --- throttling ----------------------------------------------------------------------


@pytest.fixture
def settings(settings, request):
    """The conftest settings; with the parameter "real-redis", against a real Redis."""
    if getattr(request, "param", "stand-in") == "real-redis":
        return settings.with_overrides(redis_url=request.getfixturevalue("redis_url"))
    return settings


BOTH_REDIS_BACKENDS = pytest.mark.parametrize("settings", ["stand-in", "real-redis"], indirect=True)


@pytest.fixture
async def throttled_email(services, users, settings) -> str:
    """An account to attack, with an address no other run uses (Redis may be shared)."""
    is_stand_in = type(services.redis).__module__.startswith("fakeredis")
    assert is_stand_in == (settings.redis_url is None)
    email = unique_email("throttled")
    await make_account(users, email)
    return email


def in_order(errors: list[dict]) -> list[str]:
    return [code_of(error) for error in sorted(errors, key=lambda e: int(e["path"][0][1:]))]


@BOTH_REDIS_BACKENDS
async def test_sixth_attempt_after_five_failures_is_rate_limited(
    anonymous, settings, throttled_email
):
    assert settings.login_failures_per_account == 5
    for _ in range(5):
        error = await login_error(anonymous, throttled_email, NEW_PASSWORD)
        assert code_of(error) == "UNAUTHENTICATED"
    limited = await login_error(anonymous, throttled_email, PASSWORD)  # even the right one
    assert code_of(limited) == "RATE_LIMITED"
    retry_after = limited["extensions"]["retryAfter"]
    assert isinstance(retry_after, int) and 0 < retry_after <= 60


@BOTH_REDIS_BACKENDS
async def test_aliased_logins_in_one_request_each_count(anonymous, throttled_email):
    fields = "\n".join(
        f"a{i}: login(email: $email, password: $password) {{ __typename }}" for i in range(50)
    )
    body = await anonymous.post(
        f"mutation($email: String!, $password: String!) {{ {fields} }}",
        {"email": throttled_email, "password": NEW_PASSWORD},
    )
    assert all(value is None for value in body["data"].values()), body["data"]
    codes = in_order(body["errors"])
    assert Counter(codes) == {"UNAUTHENTICATED": 5, "RATE_LIMITED": 45}
    assert codes == ["UNAUTHENTICATED"] * 5 + ["RATE_LIMITED"] * 45
    assert code_of(await login_error(anonymous, throttled_email, PASSWORD)) == "RATE_LIMITED"


@BOTH_REDIS_BACKENDS
async def test_a_successful_login_resets_the_account_counter(anonymous, throttled_email):
    for _round in range(2):
        for _ in range(4):
            error = await login_error(anonymous, throttled_email, NEW_PASSWORD)
            assert code_of(error) == "UNAUTHENTICATED"
        await login_tokens(anonymous, throttled_email)
    # Counting starts again from zero: five more failures, then the limit.
    for _ in range(5):
        await login_error(anonymous, throttled_email, NEW_PASSWORD)
    assert code_of(await login_error(anonymous, throttled_email, PASSWORD)) == "RATE_LIMITED"


@BOTH_REDIS_BACKENDS
async def test_concurrent_failed_logins_get_no_more_guesses_than_the_limit(
    anonymous, settings, throttled_email
):
    # Twenty separate requests at once: every guess beyond the limit must be refused
    # without checking the password, as it is when they arrive one after the other.
    bodies = await asyncio.gather(
        *(login(anonymous, throttled_email, f"{NEW_PASSWORD}-{n}") for n in range(20))
    )
    codes = Counter(code_of(body["errors"][0]) for body in bodies)
    assert codes == {
        "UNAUTHENTICATED": settings.login_failures_per_account,
        "RATE_LIMITED": 20 - settings.login_failures_per_account,
    }


@BOTH_REDIS_BACKENDS
async def test_failures_from_one_address_across_accounts_are_limited(
    anonymous, settings, throttled_email
):
    per_ip = settings.login_failures_per_ip
    sprayed = [unique_email("sprayed") for _ in range(per_ip)]
    half = per_ip // 2
    codes: list[str] = []
    # Two requests: one would need more aliases than the operation limit allows.
    for emails in (sprayed[:half], sprayed[half:] + [throttled_email]):
        fields = "\n".join(
            f'a{i}: login(email: "{email}", password: $password) {{ __typename }}'
            for i, email in enumerate(emails)
        )
        body = await anonymous.post(
            f"mutation($password: String!) {{ {fields} }}", {"password": PASSWORD}
        )
        codes += in_order(body["errors"])
    assert codes == ["UNAUTHENTICATED"] * per_ip + ["RATE_LIMITED"]


# --- user management -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["ADMIN", "ANALYST", "PHARMACIST", "PATIENT", "DOCTOR"])
async def test_admin_creates_an_account_for_each_role(client, anonymous, role):
    links = {}
    if role == "PATIENT":
        links["patientId"] = (await create_patient(client))["id"]
    if role == "DOCTOR":
        links["doctorId"] = (await create_doctor(client))["id"]
    created = (
        await client.data(
            CREATE_USER, {"input": {"email": EMAIL, "password": PASSWORD, "role": role, **links}}
        )
    )["createUser"]
    assert created["email"] == EMAIL and created["role"] == role
    assert created["disabled"] is False and created["mfaEnabled"] is False
    assert created["patientId"] == links.get("patientId")
    assert created["doctorId"] == links.get("doctorId")

    session = await login_tokens(anonymous, EMAIL)
    assert session["user"] == {"id": created["id"], "role": role, "mfaEnabled": False}
    for kind, field in (("patient", "patientId"), ("doctor", "doctorId")):
        if field in links:
            record = await client.data(
                f"query($id: ID!) {{ {kind}(id: $id) {{ userId }} }}", {"id": links[field]}
            )
            assert record[kind]["userId"] == created["id"]


@pytest.mark.parametrize(
    ("role", "links", "missing"),
    [
        pytest.param("PATIENT", {}, "patientId", id="patient-without-patientId"),
        pytest.param("PATIENT", {"doctorId": str(ObjectId())}, "patientId", id="patient-doctor"),
        pytest.param("DOCTOR", {}, "doctorId", id="doctor-without-doctorId"),
        pytest.param("DOCTOR", {"patientId": str(ObjectId())}, "doctorId", id="doctor-patient"),
    ],
)
async def test_create_user_needs_the_linked_record(client, role, links, missing):
    error = await client.error(
        CREATE_USER, {"input": {"email": EMAIL, "password": PASSWORD, "role": role, **links}}
    )
    assert code_of(error) == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == missing
    assert EMAIL not in await user_emails(client)


USER_ADMINISTRATION = """
mutation($id: ID!, $input: CreateUserInput!) {
  createUser(input: $input) { id }
  disableUser(id: $id) { id }
  changeUserRole(id: $id, role: ADMIN) { id }
  resetMfa(id: $id) { id }
}"""


@pytest.mark.parametrize(
    ("role", "mfa"),
    [
        pytest.param(Role.PATIENT, True, id="PATIENT"),
        pytest.param(Role.DOCTOR, True, id="DOCTOR"),
        pytest.param(Role.PHARMACIST, True, id="PHARMACIST"),
        pytest.param(Role.ANALYST, True, id="ANALYST"),
        pytest.param(Role.ADMIN, False, id="ADMIN-before-MFA"),
    ],
)
async def test_only_admins_manage_users(app, services, users, role, mfa):
    target = await make_account(users, unique_email("target"))
    token = await issue_token(services, role, mfa=mfa)
    async with http_client(app, token) as caller:
        body = await caller.post(
            USER_ADMINISTRATION,
            {
                "id": str(target["_id"]),
                "input": {"email": EMAIL, "password": PASSWORD, "role": "ADMIN"},
            },
        )
    assert body["data"] == dict.fromkeys(
        ("createUser", "disableUser", "changeUserRole", "resetMfa")
    )
    assert {error["path"][0]: code_of(error) for error in body["errors"]} == dict.fromkeys(
        ("createUser", "disableUser", "changeUserRole", "resetMfa"), "FORBIDDEN"
    )
    if not mfa:
        reasons = {error["extensions"].get("reason") for error in body["errors"]}
        assert reasons == {"MFA_REQUIRED"}
    unchanged = await users.collection.find_one({"_id": target["_id"]})
    assert (unchanged["role"], unchanged["disabled"], unchanged["tokenVersion"]) == (
        target["role"],
        target["disabled"],
        target["tokenVersion"],
    )
    assert await users.by_email(email=EMAIL) is None


async def test_anonymous_callers_cannot_manage_users(anonymous, users):
    target = await make_account(users, unique_email("target"))
    body = await anonymous.post(
        USER_ADMINISTRATION,
        {
            "id": str(target["_id"]),
            "input": {"email": EMAIL, "password": PASSWORD, "role": "ADMIN"},
        },
    )
    assert {code_of(error) for error in body["errors"]} == {"UNAUTHENTICATED"}
    assert len(body["errors"]) == 4
    assert await users.by_email(email=EMAIL) is None


async def test_change_user_role_ends_the_users_sessions(app, anonymous, client, users):
    account = await make_account(users, EMAIL, Role.PHARMACIST)
    session = await login_tokens(anonymous, EMAIL)
    assert (await assert_token_works(app, session["accessToken"]))["role"] == "PHARMACIST"

    changed = await client.data(
        "mutation($id: ID!) { changeUserRole(id: $id, role: ANALYST) { role } }",
        {"id": str(account["_id"])},
    )
    assert changed == {"changeUserRole": {"role": "ANALYST"}}
    await assert_token_dead(app, session["accessToken"])
    await assert_refresh_dead(anonymous, session["refreshToken"])
    again = await login_tokens(anonymous, EMAIL)
    assert (await assert_token_works(app, again["accessToken"]))["role"] == "ANALYST"
