"""Health endpoints, /metrics, and structured logs that never carry PHI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator

import httpx
import pytest

from auth.roles import Role
from observability.logs import DropPhiCarryingRecords, JsonFormatter
from observability.metrics_endpoint import metrics_token
from tests.conftest import http_client
from tests.support import issue_token


def plain_client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_livez_and_readyz_report_each_dependency(app) -> None:
    async with plain_client(app) as http:
        assert (await http.get("/livez")).json() == {"status": "ok", "pid": os.getpid()}
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"mongodb": "ok", "sql": "ok", "redis": "ok"}


async def test_readyz_answers_when_a_dependency_hangs(app, services) -> None:
    async def hangs() -> None:
        await asyncio.sleep(30)

    original = services.dependencies.probes["redis"]
    services.dependencies.probes["redis"] = hangs
    try:
        async with plain_client(app) as http:
            ready = await http.get("/readyz")
    finally:
        services.dependencies.probes["redis"] = original
        await services.dependencies.check("redis")
    assert ready.status_code == 503
    assert ready.headers["retry-after"] == "2"
    assert ready.json()["checks"] == {"mongodb": "ok", "sql": "ok", "redis": "timeout"}


async def test_metrics_need_the_token_and_show_the_series(app, services, settings) -> None:
    token = await issue_token(services, Role.ADMIN)
    query = "query Patients { patients(first: 3) { nodes { id appointments { totalCount } } } }"
    async with http_client(app, token) as client:
        await client.data(query)
        await client.post('{ patient(id: "000000000000000000000000") { id } }')
        # An APQ miss, then a registration and a hit.
        import hashlib

        text = "query Me { me { id } }"
        digest = hashlib.sha256(text.encode()).hexdigest()
        apq = {"persistedQuery": {"version": 1, "sha256Hash": digest}}
        await client.http.post("/graphql", json={"extensions": apq})
        await client.http.post("/graphql", json={"query": text, "extensions": apq})
        await client.http.post("/graphql", json={"extensions": apq})
    async with plain_client(app) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        answer = await http.get(
            "/metrics", headers={"Authorization": f"Bearer {metrics_token(settings)}"}
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    for series in (
        'caregraph_requests_total{operation="Patients",outcome="ok"}',
        'caregraph_request_seconds_bucket{le="0.005",operation="Patients"}',
        'caregraph_errors_total{code="NOT_FOUND"}',
        'caregraph_errors_total{code="PERSISTED_QUERY_NOT_FOUND"}',
        'caregraph_db_round_trips_bucket{le="1.0",store="mongodb"}',
        'caregraph_db_round_trips_bucket{le="0.0",store="sql"}',
        "caregraph_dataloader_batch_size_bucket",
        'caregraph_cache_lookups_total{cache="apq",result="hit"}',
        'caregraph_cache_lookups_total{cache="apq",result="miss"}',
        'caregraph_dependency_up{dependency="mongodb"} 1.0',
        "caregraph_backup_age_seconds",
        "caregraph_login_throttled_total",
        "caregraph_mongodb_shed_total",
        "caregraph_integrity_alarms_total",
    ):
        assert series in text, series


@pytest.fixture
def json_log_lines() -> Iterator[list[str]]:
    """Every log record of the test, formatted as production formats it."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(DropPhiCarryingRecords())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(handler)
    root.setLevel(previous)


LOGIN = """mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) { __typename } }"""
CREATE_USER = """mutation($input: CreateUserInput!) { createUser(input: $input) { id } }"""


async def test_logs_are_json_with_request_ids_and_never_phi(
    app, services, demo, json_log_lines
) -> None:
    patients = await services.db["patients"].find().to_list()
    assert patients
    token = await issue_token(services, Role.ADMIN)
    async with http_client(app, token) as client, plain_client(app) as anonymous:
        await client.data(
            "query Everyone { patients(first: 500) { nodes { name contact { email phone } } } }"
        )
        for patient in patients[:5]:
            email, family = patient["contact"]["email"], patient["familyName"]
            # Name search over GET: the variables travel in the query string.
            await client.http.get(
                "/graphql",
                params={
                    "query": "query Search($n: String!) { patients(name: $n) { totalCount } }",
                    "variables": json.dumps({"n": family}),
                },
            )
            for _ in range(7):  # failed logins, then the throttle
                await anonymous.post(
                    "/graphql",
                    json={"query": LOGIN, "variables": {"email": email, "password": "x" * 12}},
                )
            user = {"email": email, "password": "a long passphrase 12345", "role": "DOCTOR"}
            for _ in range(2):  # the second is a duplicate email
                await client.http.post(
                    "/graphql", json={"query": CREATE_USER, "variables": {"input": user}}
                )
            # A query that does not validate, quoting the phone number.
            await client.http.post(
                "/graphql", json={"query": f'{{ patients(name: "{patient["contact"]["phone"]}") }}'}
            )
    assert json_log_lines
    records = [json.loads(line) for line in json_log_lines]
    access = [r for r in records if r["logger"] == "caregraph.access"]
    assert access and all(len(r["requestId"]) >= 8 for r in access)
    assert any(r.get("operation") == "Everyone" for r in access)
    everything = "\n".join(json_log_lines).lower()
    for patient in patients:
        name = f"{patient['givenName']} {patient['familyName']}".lower()
        for secret in (name, patient["contact"]["email"].lower(), patient["contact"]["phone"]):
            assert secret.lower() not in everything, secret


async def test_tracing_is_off_by_default_and_spans_come_out_when_on(mongo_uri, tmp_path) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runtime.ops_settings import OpsSettings
    from tests.support import running_api, settings_for_test

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    query = "query Find($n: String!) { patients(name: $n) { totalCount } }"

    async def one_request(settings) -> None:
        async with running_api(settings) as api:
            await api.data(query, {"n": "Secretname"})

    settings = settings_for_test(mongo_uri, tmp_path)
    assert settings.ops.tracing is False
    await one_request(settings)
    assert exporter.get_finished_spans() == ()  # off by default: nothing traced
    await one_request(settings.with_overrides(ops=OpsSettings(tracing=True)))
    spans = exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert any("POST /graphql" in name for name in names), names
    assert any("GraphQL" in name or "Find" in name for name in names), names
    # Variables (patient data) never reach a span.
    assert not any("Secretname" in str(dict(span.attributes or {})) for span in spans)
