"""Attacks on access tokens, each sent as a real HTTP request.

Every refused token must give UNAUTHENTICATED on every field and no data. The probe asks
for the caller's own account (`me`) and for a list every role may read (`doctors`), so
a token that slipped through would show up as data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from contextlib import asynccontextmanager

import jwt
import pytest
from bson import ObjectId

from auth.passwords import hash_password
from auth.roles import Role
from datasources.scope import AccessScope
from datasources.users import UserStore
from tests.support import GraphQLClient, issue_token

PROBE = "{ me { id } doctors { totalCount } }"
PASSWORD = "lantern-orchard-velvet"
NEW_PASSWORD = "granite-meadow-falcon"
DROP = object()  # a claim value meaning "leave this claim out"


# --- building tokens by hand ---------------------------------------------------------


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def segment(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def forge(header: dict, claims: dict, signature: bytes = b"") -> str:
    """A compact JWT with whatever header, claims and signature bytes we like."""
    return f"{segment(header)}.{segment(claims)}.{b64url(signature)}"


def hmac_signed(header: dict, claims: dict, key: str) -> str:
    """HMAC-SHA256 over header.payload, whatever algorithm the header claims."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def claims_for(settings, user: dict, **changes) -> dict:
    """The claims TokenService would put in an access token for `user`, with changes
    (a value of DROP removes the claim)."""
    now = int(time.time())
    claims = {
        "sub": str(user["_id"]),
        "typ": "access",
        "role": user["role"],
        "ver": user["tokenVersion"],
        "mfa": True,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_urlsafe(16),
        **changes,
    }
    return {name: value for name, value in claims.items() if value is not DROP}


def sign(settings, claims: dict, *, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or settings.jwt_secret, algorithm=algorithm)


def unsegment(part: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def split(token: str) -> tuple[dict, dict, str]:
    """(header, claims, signature as sent) of a compact JWT."""
    header, claims, signature = token.split(".")
    return unsegment(header), unsegment(claims), signature


# --- requests ------------------------------------------------------------------------


@asynccontextmanager
async def client_with(app, authorization: str | None):
    """A client that sends exactly this Authorization header (or none)."""
    import httpx

    headers = {"Authorization": authorization} if authorization is not None else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as http:
        yield GraphQLClient(http)


async def probe(app, authorization: str | None) -> dict:
    async with client_with(app, authorization) as gql:
        return await gql.post(PROBE)


async def assert_refused(app, token: str | None = None, *, authorization: str | None = None):
    body = await probe(app, authorization if authorization is not None else f"Bearer {token}")
    assert body["data"] in (None, {"me": None, "doctors": None}), body
    codes = {error["path"][0]: error["extensions"]["code"] for error in body.get("errors", [])}
    assert codes == {"me": "UNAUTHENTICATED", "doctors": "UNAUTHENTICATED"}, body
    return body


async def assert_accepted(app, token: str, user: dict) -> None:
    body = await probe(app, f"Bearer {token}")
    assert "errors" not in body, body
    assert body["data"]["me"] == {"id": str(user["_id"])}
    assert isinstance(body["data"]["doctors"]["totalCount"], int)


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture
def users(services) -> UserStore:
    return UserStore(services.db, AccessScope.system())


@pytest.fixture
async def user(users) -> dict:
    """A PATIENT account with a real password (changePassword needs one)."""
    return await users.create(
        email="pat@example.org",
        password_hash=await hash_password(PASSWORD, rounds=4),
        role=Role.PATIENT.value,
    )


@pytest.fixture
def valid_token(services, user) -> str:
    return services.tokens.issue_access(
        user_id=str(user["_id"]),
        role=user["role"],
        version=user["tokenVersion"],
        mfa=True,
        session="test-session",
    ).token


# --- control cases -------------------------------------------------------------------


async def test_token_from_token_service_is_accepted(app, user, valid_token):
    await assert_accepted(app, valid_token, user)


async def test_hand_built_token_with_the_right_key_is_accepted(app, settings, user):
    # Shows the hand-built tokens below differ from a good one only in what each attacks.
    await assert_accepted(app, sign(settings, claims_for(settings, user)), user)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"nbf": +2, "iat": +2}, id="nbf-and-iat-2s-ahead"),
        pytest.param({"exp": -2}, id="expired-2s-ago"),
    ],
)
async def test_clock_skew_within_the_leeway_is_accepted(app, settings, user, changes):
    now = int(time.time())
    claims = claims_for(settings, user, **{name: now + delta for name, delta in changes.items()})
    await assert_accepted(app, sign(settings, claims), user)


# --- signature and algorithm ---------------------------------------------------------


async def test_alg_none_token_is_refused(app, settings, user):
    token = forge({"alg": "none", "typ": "JWT"}, claims_for(settings, user))
    assert token.endswith(".")  # empty signature
    await assert_refused(app, token)


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
async def test_alg_none_spelling_variants_are_refused(app, settings, user, alg):
    await assert_refused(app, forge({"alg": alg, "typ": "JWT"}, claims_for(settings, user)))


async def test_token_signed_with_another_key_is_refused(app, settings, user):
    token = sign(settings, claims_for(settings, user), key="another-key-" + "y" * 40)
    await assert_refused(app, token)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
async def test_other_hmac_algorithm_with_the_right_key_is_refused(app, settings, user, algorithm):
    # Correctly signed with the server's own key, but not with the pinned HS256.
    await assert_refused(app, sign(settings, claims_for(settings, user), algorithm=algorithm))


async def test_rs256_token_is_refused(app, settings, user):
    token = forge({"alg": "RS256", "typ": "JWT"}, claims_for(settings, user), b"\x01" * 256)
    await assert_refused(app, token)


async def test_rs256_header_over_an_hmac_signature_is_refused(app, settings, user):
    # Key confusion: a valid HMAC-SHA256 with the server's key, labelled RS256.
    token = hmac_signed(
        {"alg": "RS256", "typ": "JWT"}, claims_for(settings, user), settings.jwt_secret
    )
    await assert_refused(app, token)


# --- time claims, audience, issuer ---------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"exp": -60, "iat": -120, "nbf": -120}, id="expired"),
        pytest.param({"exp": -6}, id="expired-just-beyond-leeway"),
        pytest.param({"nbf": +60}, id="nbf-in-the-future"),
        pytest.param({"iat": +60}, id="iat-in-the-future"),
        pytest.param({"nbf": +60, "iat": +60, "exp": +3600}, id="issued-in-the-future"),
    ],
)
async def test_token_outside_its_validity_period_is_refused(app, settings, user, changes):
    now = int(time.time())
    claims = claims_for(settings, user, **{name: now + delta for name, delta in changes.items()})
    await assert_refused(app, sign(settings, claims))


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"aud": "another-api"}, id="wrong-audience"),
        pytest.param({"aud": ["another-api"]}, id="wrong-audience-list"),
        pytest.param({"iss": "someone-else"}, id="wrong-issuer"),
        pytest.param({"iss": ""}, id="empty-issuer"),
    ],
)
async def test_wrong_audience_or_issuer_is_refused(app, settings, user, changes):
    await assert_refused(app, sign(settings, claims_for(settings, user, **changes)))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ"])
async def test_token_missing_a_required_claim_is_refused(app, settings, user, claim):
    await assert_refused(app, sign(settings, claims_for(settings, user, **{claim: DROP})))


# --- token type and claims -----------------------------------------------------------


async def test_refresh_token_is_refused_as_an_access_token(app, services, user):
    refresh = services.tokens.issue_refresh(
        user_id=str(user["_id"]), family="f", mfa=True, version=user["tokenVersion"]
    )
    await assert_refused(app, refresh.token)


@pytest.mark.parametrize("typ", ["refresh", "Access", "", None])
async def test_token_with_another_typ_is_refused(app, settings, user, typ):
    await assert_refused(app, sign(settings, claims_for(settings, user, typ=typ)))


@pytest.fixture
async def admin(users) -> dict:
    return await users.create(
        email="root@example.org", password_hash="!unusable", role=Role.ADMIN.value
    )


async def test_tampered_payload_keeping_the_old_signature_is_refused(
    app, services, settings, admin
):
    patient = await issue_token(services, Role.PATIENT)
    header, claims, signature = split(patient)
    for changes in ({"role": "ADMIN"}, {"sub": str(admin["_id"]), "role": "ADMIN"}):
        tampered = f"{segment(header)}.{segment({**claims, **changes})}.{signature}"
        await assert_refused(app, tampered)


async def test_tampered_payload_re_signed_with_a_wrong_key_is_refused(
    app, services, settings, admin
):
    _, claims, _ = split(await issue_token(services, Role.PATIENT))
    for changes in ({"role": "ADMIN"}, {"sub": str(admin["_id"]), "role": "ADMIN"}):
        forged = sign(settings, {**claims, **changes}, key="guessed-key-" + "z" * 40)
        await assert_refused(app, forged)


async def test_signature_of_another_valid_token_is_refused(app, services):
    # Two genuine tokens: the header and payload of one with the signature of the other.
    first = await issue_token(services, Role.PATIENT)
    second = await issue_token(services, Role.ADMIN)
    header, claims, _ = split(first)
    *_, other_signature = split(second)
    await assert_refused(app, f"{segment(header)}.{segment(claims)}.{other_signature}")


@pytest.mark.parametrize(
    "sub",
    [
        pytest.param("not-an-object-id", id="not-hex"),
        pytest.param("", id="empty"),
        pytest.param("0123456789abcdef0123456", id="23-hex-digits"),
        pytest.param({"$ne": None}, id="operator-object"),
        pytest.param(12345, id="integer"),
        pytest.param(str(ObjectId()), id="unknown-account"),
    ],
)
async def test_sub_that_names_no_account_is_refused(app, settings, user, sub):
    await assert_refused(app, sign(settings, claims_for(settings, user, sub=sub)))


# --- the account's current state -----------------------------------------------------


async def test_token_of_a_disabled_account_is_refused(app, users, user, valid_token):
    # Disabled directly in the database, without the tokenVersion bump disableUser does.
    await users.collection.update_one({"_id": user["_id"]}, {"$set": {"disabled": True}})
    await assert_refused(app, valid_token)


async def test_token_with_an_older_or_newer_version_is_refused(app, settings, user):
    for version in (user["tokenVersion"] - 1, user["tokenVersion"] + 1, None, "1"):
        await assert_refused(app, sign(settings, claims_for(settings, user, ver=version)))


async def _logout(app, client, user, token):
    async with client_with(app, f"Bearer {token}") as own:
        return await own.data("mutation { logout }")


async def _change_password(app, client, user, token):
    async with client_with(app, f"Bearer {token}") as own:
        return await own.data(
            "mutation($old: String!, $new: String!) {"
            " changePassword(currentPassword: $old, newPassword: $new) }",
            {"old": PASSWORD, "new": NEW_PASSWORD},
        )


async def _change_user_role(app, client, user, token):
    return await client.data(
        "mutation($id: ID!) { changeUserRole(id: $id, role: PHARMACIST) { role } }",
        {"id": str(user["_id"])},
    )


async def _disable_user(app, client, user, token):
    return await client.data(
        "mutation($id: ID!) { disableUser(id: $id) { disabled } }", {"id": str(user["_id"])}
    )


async def _reset_mfa(app, client, user, token):
    return await client.data(
        "mutation($id: ID!) { resetMfa(id: $id) { mfaEnabled } }", {"id": str(user["_id"])}
    )


REVOKING_ACTIONS = {
    "logout": _logout,
    "changePassword": _change_password,
    "changeUserRole": _change_user_role,
    "disableUser": _disable_user,
    "resetMfa": _reset_mfa,
}


@pytest.mark.parametrize("action", REVOKING_ACTIONS)
async def test_token_issued_before_the_version_bump_is_refused(
    app, services, client, users, user, valid_token, action
):
    await assert_accepted(app, valid_token, user)
    result = await REVOKING_ACTIONS[action](app, client, user, valid_token)
    assert next(iter(result.values())) not in (None, False), result
    await assert_refused(app, valid_token)

    after = await users.collection.find_one({"_id": user["_id"]})
    assert after["tokenVersion"] == user["tokenVersion"] + 1
    if action != "disableUser":
        # Refused because of the version, not because the account became unusable.
        fresh = services.tokens.issue_access(
            user_id=str(user["_id"]),
            role=after["role"],
            version=after["tokenVersion"],
            mfa=True,
            session="test-session",
        )
        await assert_accepted(app, fresh.token, user)


# --- the Authorization header --------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("Basic dXNlcjpwYXNzd29yZA==", id="basic"),
        pytest.param("Basic {token}", id="basic-with-a-valid-token"),
        pytest.param("Bearer", id="bearer-without-token"),
        pytest.param("Bearer ", id="bearer-and-a-space"),
        pytest.param("{token}", id="token-without-scheme"),
        pytest.param("Token {token}", id="other-scheme"),
        pytest.param("Bearer {token}x", id="token-with-a-trailing-character"),
        pytest.param("Bearer {token} {token}", id="two-tokens"),
        pytest.param("Bearer not.a.jwt", id="garbage"),
        pytest.param("Bearer ....", id="only-dots"),
    ],
)
async def test_malformed_authorization_header_is_refused(app, valid_token, template):
    await assert_refused(app, authorization=template.format(token=valid_token))


async def test_request_without_a_token_is_unauthenticated(app):
    body = await probe(app, None)
    assert body["data"] in (None, {"me": None, "doctors": None})
    assert {error["extensions"]["code"] for error in body["errors"]} == {"UNAUTHENTICATED"}


# --- administrators before their second factor ---------------------------------------


async def test_admin_without_mfa_may_only_enrol(app, services):
    token = await issue_token(services, Role.ADMIN, mfa=False)
    async with client_with(app, f"Bearer {token}") as admin:
        me = await admin.data("{ me { id role } }")
        assert me["me"]["role"] == "ADMIN"

        enrollment = await admin.data("mutation { enrollMfa { secret provisioningUri } }")
        assert enrollment["enrollMfa"]["secret"]
        assert enrollment["enrollMfa"]["provisioningUri"].startswith("otpauth://totp/")

        body = await admin.post("{ patients { totalCount } }")
        assert body["data"] in (None, {"patients": None})
        [error] = body["errors"]
        assert error["extensions"]["code"] == "FORBIDDEN"
        assert error["extensions"]["reason"] == "MFA_REQUIRED"
