"""Fixtures of the report tests: which Redis and which k the app uses, an analyst's
client, and the hand-made edge records (with or without the demo data set)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
from starlette.applications import Starlette

from auth.roles import Role
from runtime.services import Services
from settings import Settings
from tests.factories import create_doctor, create_patient
from tests.reports.support import (
    CANCEL,
    EDGE_VISIT,
    OPEN_RX_START,
    OVERDUE_VISIT,
    PLAIN_VISIT,
    RARE,
    REDIS_DOWN_URL,
    UPDATE_APPOINTMENT,
    Edges,
    book_at,
    complete,
    create_bill,
    prescribe,
    reset_slots,
)
from tests.support import GraphQLClient, issue_token, signed_in

# -- the settings: which Redis, which k -------------------------------------------------


@pytest.fixture
def redis_backend() -> str:
    """The Redis the app uses: "stand-in" (in-process), "real" or "down"."""
    return "stand-in"


@pytest.fixture
def min_group_size() -> int | None:
    """k for analysts; None: the settings' default."""
    return None


@pytest.fixture
def settings(
    settings: Settings,
    redis_backend: str,
    min_group_size: int | None,
    request: pytest.FixtureRequest,
) -> Settings:
    """The suite's settings with this module's Redis and k."""
    if min_group_size is not None:
        settings = settings.with_overrides(report_min_group_size=min_group_size)
    if redis_backend == "real":
        url = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as leftover:
            leftover.flushdb()  # no cached results or counters from an interrupted run
        return settings.with_overrides(redis_url=url)
    if redis_backend == "down":
        return settings.with_overrides(redis_url=REDIS_DOWN_URL)
    return settings


@pytest.fixture
async def analyst(app: Starlette, services: Services) -> AsyncIterator[GraphQLClient]:
    async with signed_in(app, await issue_token(services, Role.ANALYST)) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh_slots() -> None:
    reset_slots()


@pytest.fixture
async def edges(client: GraphQLClient, services: Services) -> Edges:
    """Records for the rules' edges, made through the API as an administrator."""
    patient = await create_patient(client, givenName="Edith", familyName="Edge")
    other = await create_patient(client, givenName="Otto", familyName="Other")
    doctor = await create_doctor(client, givenName="Erin", familyName="Edgeworth")
    visit = await book_at(client, services, patient, doctor, EDGE_VISIT)
    plain_visit = await book_at(client, services, patient, doctor, PLAIN_VISIT)
    overdue = await book_at(client, services, patient, doctor, OVERDUE_VISIT)
    upcoming = await book_at(client, services, patient, doctor)
    cancelled = await book_at(client, services, other, doctor)
    await complete(client, visit, RARE)
    await complete(client, plain_visit, None)
    # A diagnosis on a visit that has not happened: not a COMPLETED visit, never counted.
    await client.data(UPDATE_APPOINTMENT, {"id": upcoming, "input": {"diagnosis": RARE}})
    await client.data(CANCEL, {"id": cancelled})
    open_rx = await prescribe(
        client, patient, doctor, indication=RARE, start=OPEN_RX_START, cost="12.34"
    )
    # No indication: neither a treatment episode nor a cost of any disease.
    await prescribe(client, patient, doctor, indication=None, start="2026-02-01", cost="99.00")
    bill = await create_bill(client, patient, disease=RARE, total="250.00", appointment_id=visit)
    return Edges(patient, other, doctor, visit, plain_visit, overdue, upcoming, open_rx, bill)


@pytest.fixture
async def data_set(demo: dict[str, int], edges: Edges) -> Edges:
    """The demo data set plus the hand-made edge records."""
    return edges
