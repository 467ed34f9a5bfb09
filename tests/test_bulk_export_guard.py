"""The bulk-export guard: a doctor paging through patients is stopped at the budget
of distinct patients per window (Redis, shared by every process), with an alarm."""

from __future__ import annotations

import logging

import pytest
from bson import ObjectId

from auth.roles import Role
from datasources.redis.phi_guard import ALARMS_KEY
from tests.conftest import http_client
from tests.factories import book, create_doctor, create_patient, future_slot
from tests.support import audit_records, issue_token

BUDGET = 3
PAGE = """query($after: String) { patients(first: 1, after: $after) {
  pageInfo { hasNextPage endCursor } nodes { id name } } }"""


@pytest.fixture
def settings(settings, redis_url):
    return settings.with_overrides(
        redis_url=redis_url, phi_read_budgets=(("DOCTOR", BUDGET),), phi_read_window_s=3600
    )


async def test_walking_pages_trips_the_guard_at_the_budget(app, client, services, caplog):
    doctor = await create_doctor(client)
    for day in range(BUDGET + 2):
        patient = await create_patient(client, givenName=f"Patient{day}")
        await book(client, patient, doctor, future_slot(days=day + 2))
    token = await issue_token(services, Role.DOCTOR, doctor_id=ObjectId(doctor["id"]))
    seen: list[str] = []
    after = None
    caplog.set_level(logging.WARNING, logger="caregraph.phi_guard")
    async with http_client(app, token) as caller:
        for _ in range(BUDGET + 2):  # bounded walk
            response = await caller.http.post(
                "/graphql", json={"query": PAGE, "variables": {"after": after}}
            )
            if response.status_code != 200:
                break
            page = response.json()["data"]["patients"]
            seen += [node["id"] for node in page["nodes"]]
            after = page["pageInfo"]["endCursor"]
        assert response.status_code == 429
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert "data" not in body
        assert len(seen) == BUDGET
        # Patients already counted can still be read; new ones cannot.
        again = await caller.post("query($id: ID!) { patient(id: $id) { name } }", {"id": seen[0]})
        assert "errors" not in again
    assert await services.redis.get(ALARMS_KEY) in (b"1", "1")
    assert any("bulk-export guard" in message for message in caplog.messages)
    refused = [r for r in await audit_records(services) if r["outcome"] == "RATE_LIMITED"]
    assert len(refused) == 1 and refused[0]["actor"]["role"] == "DOCTOR"


async def test_roles_without_a_budget_are_not_limited(app, client, services):
    for index in range(BUDGET + 2):
        await create_patient(client, givenName=f"Patient{index}")
    body = await client.post("{ patients(first: 10) { nodes { name } } }")  # ADMIN
    assert "errors" not in body and len(body["data"]["patients"]["nodes"]) == BUDGET + 2
