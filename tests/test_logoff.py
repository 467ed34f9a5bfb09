"""Automatic logoff: a refresh token left unused past the idle timeout is refused, and
no session outlives its absolute lifetime; either way the whole session ends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from datasources.documents import utcnow
from datasources.scope import AccessScope
from datasources.users import UserStore
from tests.test_accounts import EMAIL, REFRESH, login_tokens, make_account


@pytest.fixture
def users(services) -> UserStore:
    return UserStore(services.db, AccessScope.system())


async def _refresh(anonymous, token: str) -> dict:
    return await anonymous.post(REFRESH, {"token": token})


async def _age(services, *, field: str, by: timedelta) -> None:
    await services.db["refresh_tokens"].update_many({}, [{"$set": {field: utcnow() - by}}])


async def test_a_refresh_token_idle_past_the_timeout_is_refused(anonymous, services, users):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    # Used within the idle time: fine, and the new token starts a new idle period.
    fresh = await _refresh(anonymous, session["refreshToken"])
    assert "errors" not in fresh, fresh
    token = fresh["data"]["refreshToken"]["refreshToken"]
    await _age(services, field="issuedAt", by=timedelta(minutes=31))  # default: 30 minutes
    body = await _refresh(anonymous, token)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "inactivity" in body["errors"][0]["message"]
    assert await services.db["refresh_tokens"].count_documents({"revokedAt": None}) == 0


async def test_no_session_outlives_its_absolute_lifetime(anonymous, services, users):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    token = session["refreshToken"]
    # Active all along (each token fresh), but the login was 12 hours and a minute ago.
    await _age(services, field="sessionStartedAt", by=timedelta(hours=12, minutes=1))
    body = await _refresh(anonymous, token)
    assert "maximum length" in body["errors"][0]["message"]


async def test_refreshing_keeps_the_session_start(anonymous, services, users):
    await make_account(users, EMAIL)
    session = await login_tokens(anonymous, EMAIL)
    started = (await services.db["refresh_tokens"].find_one({}))["sessionStartedAt"]
    token = session["refreshToken"]
    for _ in range(2):
        body = await _refresh(anonymous, token)
        token = body["data"]["refreshToken"]["refreshToken"]
    starts = await services.db["refresh_tokens"].distinct("sessionStartedAt")
    assert starts == [started]
