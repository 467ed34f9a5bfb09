"""Self sign-up against abuse: a per-address budget counted per aliased call, and no
account enumeration (a taken address is answered exactly like a fresh one; the code that
finishes a sign-up goes to the address, never to the caller)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from datetime import timedelta

import pytest

import auth.passwords
from datasources.registrations import code_hash
from datasources.scope import AccessScope
from datasources.users import UserStore
from tests.test_accounts import (
    BOTH_REDIS_BACKENDS,
    INVALID_LOGIN,
    NEW_PASSWORD,
    PASSWORD,
    code_of,
    identity,
    in_order,
    login_error,
    login_tokens,
    make_account,
    register_input,
    unique_email,
    user_emails,
    verification_code,
)


@pytest.fixture
def users(services) -> UserStore:
    return UserStore(services.db, AccessScope.system())


@pytest.fixture
def settings(settings, request):
    """The conftest settings; "real-redis": against a real Redis; "production": the
    production flag on."""
    param = getattr(request, "param", "stand-in")
    if param == "real-redis":
        return settings.with_overrides(redis_url=request.getfixturevalue("redis_url"))
    if param == "production":
        return settings.with_overrides(production=True)
    return settings


# `__typename` only: the same document runs against the old and the new schema.
REGISTER_ANY = """
mutation($input: RegisterInput!) { register(input: $input) { __typename } }"""
REGISTER = """
mutation($input: RegisterInput!) { register(input: $input) { __typename message } }"""
VERIFY = """
mutation($email: String!, $code: String!) {
  verifyEmail(email: $email, code: $code) { accessToken user { email role patientId } }
}"""
INVALID_VERIFICATION = "invalid email or verification code"


async def verify_error(anonymous, email: str, code: str) -> dict:
    body = await anonymous.post(VERIFY, {"email": email, "code": code})
    assert body["data"] == {"verifyEmail": None}, body
    [error] = body["errors"]
    return error


async def patient_count(client) -> int:
    return (await client.data("{ patients { totalCount } }"))["patients"]["totalCount"]


# --- the budget ------------------------------------------------------------------------


@BOTH_REDIS_BACKENDS
async def test_twenty_aliased_registrations_in_one_request_trip_the_limit(anonymous, services):
    emails = [unique_email("alias") for _ in range(20)]
    fields = "\n".join(
        f'a{i}: register(input: {{email: "{email}", password: $password, givenName: "A", '
        f'familyName: "B", birthDate: "1990-01-01", sex: FEMALE}}) {{ __typename }}'
        for i, email in enumerate(emails)
    )
    body = await anonymous.post(
        f"mutation($password: String!) {{ {fields} }}", {"password": PASSWORD}
    )
    answered = [key for key, value in body["data"].items() if value is not None]
    assert len(answered) == 10, body  # the default budget: 10 per address per hour
    errors = body.get("errors", [])
    assert in_order(errors) == ["RATE_LIMITED"] * 10
    assert all(0 < error["extensions"]["retryAfter"] <= 3600 for error in errors)
    # Nothing was queued for the refused ones: only ten codes went out.
    assert await services.db["pending_registrations"].count_documents({}) == 10
    assert await services.db["users"].count_documents({}) == 0
    # The next request from this address is refused too, even with one sign-up.
    later = await anonymous.post(REGISTER_ANY, register_input(unique_email(), PASSWORD))
    assert code_of(later["errors"][0]) == "RATE_LIMITED"


async def test_invalid_sign_ups_use_up_the_budget_too(anonymous, settings):
    for _ in range(settings.registrations_per_ip):
        body = await anonymous.post(REGISTER_ANY, register_input("not-an-email", PASSWORD))
        assert code_of(body["errors"][0]) == "BAD_USER_INPUT"
    body = await anonymous.post(REGISTER_ANY, register_input(unique_email(), PASSWORD))
    assert code_of(body["errors"][0]) == "RATE_LIMITED"


# --- no enumeration --------------------------------------------------------------------


@pytest.fixture
def hashes(monkeypatch) -> list[int]:
    """The bcrypt cost of every password hashed, in order."""
    made: list[int] = []
    real_hash = auth.passwords._hash

    def spy(password: str, rounds: int) -> str:
        made.append(rounds)
        return real_hash(password, rounds)

    monkeypatch.setattr(auth.passwords, "_hash", spy)
    return made


async def test_a_taken_email_is_answered_exactly_like_a_fresh_one(
    anonymous, client, services, users, hashes, caplog
):
    owner = await make_account(users, "owner@example.org")
    hashes.clear()
    with caplog.at_level(logging.INFO):
        fresh = await anonymous.post(REGISTER_ANY, register_input("new@example.org", PASSWORD))
        hashed_for_fresh = len(hashes)
        taken = await anonymous.post(REGISTER_ANY, register_input("owner@example.org", PASSWORD))
    assert taken == fresh, "the response tells a taken address from a fresh one"
    assert hashed_for_fresh == 1 and len(hashes) == 2  # the same bcrypt work for both

    # The owner is told out of band; the existing account is untouched.
    outbox = services.db["outbox"]
    [notice] = await outbox.find({"to": "owner@example.org"}).to_list()
    assert notice["template"] == "account-exists" and notice["data"] == {}
    [event] = [r for r in caplog.records if getattr(r, "event", None)]
    assert event.event == "registration.existing_account"
    assert event.user_id == str(owner["_id"])
    assert "registration attempt for an existing account" in event.getMessage()
    # The fresh address got a code; the code is logged (not production), addresses never.
    [mail] = await outbox.find({"to": "new@example.org"}).to_list()
    assert mail["template"] == "verify-email"
    assert any(mail["data"]["code"] in r.getMessage() for r in caplog.records)
    assert not any("@example.org" in r.getMessage() for r in caplog.records)
    assert await patient_count(client) == 0  # nothing exists before the address is proven
    await login_tokens(anonymous, "owner@example.org")


@pytest.mark.parametrize("settings", ["production"], indirect=True)
async def test_no_code_is_logged_in_production(anonymous, services, caplog):
    with caplog.at_level(logging.INFO):
        body = await anonymous.post(REGISTER, register_input("new@example.org", PASSWORD))
    assert body["data"]["register"]["__typename"] == "RegistrationReceived", body
    code = await verification_code(services, "new@example.org")
    assert not any(code in record.getMessage() for record in caplog.records)


async def test_login_before_verification_is_answered_like_a_wrong_password(anonymous, users):
    await anonymous.data(REGISTER, register_input("pending@example.org", PASSWORD))
    await make_account(users, "owner@example.org")
    pending = await login_error(anonymous, "pending@example.org", PASSWORD)  # right password
    wrong = await login_error(anonymous, "owner@example.org", NEW_PASSWORD)
    assert identity(pending) == identity(wrong)
    assert pending["message"] == INVALID_LOGIN


# --- verification ----------------------------------------------------------------------


async def test_the_emailed_code_creates_the_account_once(anonymous, client, services):
    await anonymous.data(REGISTER, register_input("new@example.org", PASSWORD))
    code = await verification_code(services, "new@example.org")
    wrong = await verify_error(anonymous, "new@example.org", "ABCDEFGHJK")
    unknown = await verify_error(anonymous, "nobody@example.org", code)
    assert identity(wrong) == identity(unknown)
    assert wrong["message"] == INVALID_VERIFICATION and code_of(wrong) == "UNAUTHENTICATED"

    signed_in = (
        await anonymous.data(VERIFY, {"email": " New@Example.org ", "code": code.lower()})
    )["verifyEmail"]
    assert signed_in["accessToken"]
    assert signed_in["user"]["email"] == "new@example.org"
    assert signed_in["user"]["role"] == "PATIENT" and signed_in["user"]["patientId"]
    assert await patient_count(client) == 1
    assert identity(await verify_error(anonymous, "new@example.org", code)) == identity(wrong)
    await login_tokens(anonymous, "new@example.org")


async def test_an_expired_code_is_refused_like_a_wrong_one(anonymous, services):
    await anonymous.data(REGISTER, register_input("new@example.org", PASSWORD))
    code = await verification_code(services, "new@example.org")
    pending = services.db["pending_registrations"]
    found = await pending.find_one({"email": "new@example.org"})
    assert found["codeHash"] == code_hash(code)  # only the hash is kept
    await pending.update_one(
        {"_id": found["_id"]}, {"$set": {"expiresAt": found["createdAt"] - timedelta(seconds=1)}}
    )
    error = await verify_error(anonymous, "new@example.org", code)
    assert error["message"] == INVALID_VERIFICATION


async def test_signing_up_again_replaces_the_pending_code(anonymous, client, services):
    await anonymous.data(REGISTER, register_input("new@example.org", PASSWORD))
    first = await verification_code(services, "new@example.org")
    await anonymous.data(REGISTER, register_input("new@example.org", NEW_PASSWORD))
    second = await verification_code(services, "new@example.org")
    assert (await verify_error(anonymous, "new@example.org", first))["message"] == (
        INVALID_VERIFICATION
    )
    await anonymous.data(VERIFY, {"email": "new@example.org", "code": second})
    await login_tokens(anonymous, "new@example.org", NEW_PASSWORD)
    assert (await user_emails(client)).count("new@example.org") == 1


async def test_concurrent_sign_ups_of_one_address_keep_one_pending(anonymous, services):
    bodies = await asyncio.gather(
        *(anonymous.post(REGISTER, register_input("new@example.org", PASSWORD)) for _ in range(4))
    )
    assert all("errors" not in body for body in bodies), bodies
    assert len({body["data"]["register"]["message"] for body in bodies}) == 1
    assert await services.db["pending_registrations"].count_documents({}) == 1


async def test_guessing_codes_is_throttled_like_login(anonymous, services, settings):
    await anonymous.data(REGISTER, register_input("new@example.org", PASSWORD))
    code = await verification_code(services, "new@example.org")
    fields = "\n".join(
        f'a{i}: verifyEmail(email: "new@example.org", code: "WRONG{i:05d}") {{ accessToken }}'
        for i in range(settings.login_failures_per_account + 1)
    )
    body = await anonymous.post(f"mutation {{ {fields} }}")
    assert Counter(in_order(body["errors"])) == {
        "UNAUTHENTICATED": settings.login_failures_per_account,
        "RATE_LIMITED": 1,
    }
    # Even the right code waits out the limit.
    assert code_of(await verify_error(anonymous, "new@example.org", code)) == "RATE_LIMITED"
