"""Surviving dependency failures: circuits, fast 503s, the MongoDB gate, bounded
transactions, idempotent retries and the login throttle's Redis-down budget."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
import redis.asyncio as redis
from pymongo.errors import OperationFailure, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import OperationalError

from auth.fallback_budget import FallbackBudget
from auth.roles import Role
from auth.throttle import RateLimited
from datasources.redis.throttle import LoginThrottle
from datasources.transactions import run_transaction
from runtime.dependencies import Circuit, DependencyDown, ServiceUnavailable, dependency_of
from tests.conftest import http_client
from tests.support import issue_token

PATIENTS = "{ patients(first: 2) { totalCount nodes { id } } }"
CREATE = """mutation($input: CreatePatientInput!) { createPatient(input: $input) { id } }"""
NEW_PATIENT = {
    "givenName": "Ida",
    "familyName": "Retry",
    "birthDate": "1990-01-02",
    "sex": "FEMALE",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_outages_are_told_apart_from_bugs() -> None:
    assert dependency_of(ServerSelectionTimeoutError("no servers")) == "mongodb"
    assert dependency_of(RedisConnectionError("refused")) == "redis"
    assert dependency_of(OperationalError("SELECT 1", {}, Exception("gone"))) == "sql"
    assert dependency_of(ServiceUnavailable("sql")) == "sql"
    # A failed command (say a bad pipeline) is a bug or bad input, not an outage.
    assert dependency_of(OperationFailure("bad $group", code=15952)) is None
    assert dependency_of(ValueError("boom")) is None


def test_a_circuit_is_down_since_it_opened_until_it_closes() -> None:
    changes: list[tuple[str, bool]] = []
    circuit = Circuit("sql", listeners=[lambda name, up: changes.append((name, up))])
    circuit.refuse_if_down()  # up: nothing happens
    circuit.opened("OperationalError")
    circuit.opened("again")  # still the first outage
    with pytest.raises(DependencyDown) as refused:
        circuit.refuse_if_down()
    assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    assert refused.value.body()["errors"][0]["extensions"]["dependency"] == "sql"
    circuit.closed()
    circuit.refuse_if_down()
    assert changes == [("sql", False), ("sql", True)]


def test_the_fallback_budget_counts_per_key() -> None:
    budget = FallbackBudget(limit=2, window_s=60)
    assert budget.spend("a") is None and budget.spend("a") is None
    retry_after = budget.spend("a")
    assert retry_after is not None and 0 < retry_after <= 60
    assert budget.spend("b") is None  # someone else still signs in
    budget.forget("a")
    assert budget.spend("a") is None


async def test_with_redis_down_the_attacked_account_is_throttled_not_everyone() -> None:
    unreachable = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    throttle = LoginThrottle(
        unreachable,
        per_account=5,
        per_ip=50,
        fallback=FallbackBudget(limit=3, window_s=60),
    )
    for _ in range(3):
        await throttle.attempt(email="victim@test.invalid", ip="10.0.0.1")
    with pytest.raises(RateLimited):
        await throttle.attempt(email="Victim@test.invalid", ip="10.0.0.2")
    await throttle.attempt(email="someone.else@test.invalid", ip="10.0.0.1")
    await unreachable.aclose()


async def test_a_known_down_mongodb_is_refused_at_once_and_the_probe_reopens(app, services) -> None:
    token = await issue_token(services, Role.ADMIN)
    services.dependencies.mark_down("mongodb", "test")
    async with http_client(app, token) as client:
        response = await client.http.post("/graphql", json={"query": PATIENTS})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "2"
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert error["extensions"]["dependency"] == "mongodb"
        assert await services.dependencies.check("mongodb") == "ok"
        assert (await client.data(PATIENTS))["patients"]["totalCount"] == 0


async def test_a_full_gate_sheds_with_503_and_the_next_request_is_served(app, services) -> None:
    gate = services.mongo_client.gate
    token = await issue_token(services, Role.ADMIN)
    # Every process slot taken (as by a burst of slow queries): the request is shed.
    held = [await gate.acquire() for _ in range(gate.per_process)]
    wait_s, gate.wait_s = gate.wait_s, 0.05
    try:
        async with http_client(app, token) as client:
            response = await client.http.post("/graphql", json={"query": PATIENTS})
            assert response.status_code == 503, response.text
            extensions = response.json()["errors"][0]["extensions"]
            assert extensions == {
                "code": "SERVICE_UNAVAILABLE",
                "dependency": "mongodb",
                "retryAfter": 2,
            }
            assert services.dependencies["mongodb"].is_up  # overload is not an outage
            for taken in held:
                for semaphore in taken:
                    semaphore.release()
            gate.wait_s = wait_s
            assert (await client.data(PATIENTS))["patients"]["totalCount"] == 0
            # A burst far larger than the process bound queues and is served.
            bodies = await asyncio.gather(*(client.data(PATIENTS) for _ in range(40)))
            assert len(bodies) == 40
            assert gate.in_use == 0
    finally:
        gate.wait_s = wait_s


async def test_a_transaction_stops_retrying_at_its_budget(services) -> None:
    attempts = 0

    async def always_transient(session) -> None:
        nonlocal attempts
        attempts += 1
        error = OperationFailure("write conflict", code=112)
        error._add_error_label("TransientTransactionError")
        raise error

    with pytest.raises(OperationFailure):
        await run_transaction(services.mongo_client, always_transient, budget_s=0.3)
    assert 1 <= attempts < 1000  # retried, and stopped


async def test_an_idempotency_key_makes_a_retry_return_the_first_result(app, services) -> None:
    token = await issue_token(services, Role.ADMIN)
    async with http_client(app, token) as client:
        body = {"query": CREATE, "variables": {"input": NEW_PATIENT}}
        first = await client.http.post("/graphql", json=body, headers={"Idempotency-Key": "k-1"})
        again = await client.http.post("/graphql", json=body, headers={"Idempotency-Key": "k-1"})
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        other = {"query": CREATE, "variables": {"input": {**NEW_PATIENT, "givenName": "Ada"}}}
        reused = await client.http.post("/graphql", json=other, headers={"Idempotency-Key": "k-1"})
        assert reused.status_code == 422
        assert reused.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert await services.db["patients"].count_documents({"familyName": "Retry"}) == 1
        # Without a key, the same request is a new one.
        await client.data(CREATE, {"input": NEW_PATIENT})
        assert await services.db["patients"].count_documents({"familyName": "Retry"}) == 2


async def test_idempotency_keys_belong_to_their_caller(app, services) -> None:
    body = {"query": CREATE, "variables": {"input": NEW_PATIENT}}
    ids = []
    for _ in range(2):
        token = await issue_token(services, Role.ADMIN)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": "shared"},
        ) as http:
            ids.append((await http.post("/graphql", json=body)).json()["data"]["createPatient"])
    assert ids[0] != ids[1]
