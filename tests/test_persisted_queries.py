"""Persisted queries over HTTP: Apollo APQ, trusted documents, and the document modes.

The statuses, codes, messages and cache headers are the ones Apollo clients and
routers switch on (shared/DESIGN.md §3), so the tests spell them out exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import create_app
from auth.roles import Role
from persisted.manifest import ManifestError
from settings import ALLOW_LIST_AUDIT, OPEN, PERSISTED_ONLY
from tests.support import issue_token, running_app, signed_in

ROOT = Path(__file__).resolve().parent.parent
ME = "query Me { me { role } }"
NOT_CACHEABLE = "private, no-cache, must-revalidate"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(text: str, version: int = 1) -> dict:
    return {"persistedQuery": {"version": version, "sha256Hash": sha256(text)}}


def trusted(name: str) -> tuple[str, str]:
    """(documentId, exact text) of a file in queries/."""
    body = (ROOT / "queries" / f"{name}.graphql").read_text(encoding="utf-8")
    return f"sha256:{sha256(body)}", body


def error_of(response: httpx.Response) -> tuple[int, str, str]:
    (error,) = response.json()["errors"]
    return response.status_code, error["extensions"]["code"], error["message"]


@asynccontextmanager
async def client_for(app, role: Role | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `app` as `role` (none: anonymous); these tests read statuses and
    headers, so they use the raw client."""
    token = await issue_token(app.state.services, role) if role is not None else None
    async with signed_in(app, token) as client:
        yield client.http


def get_params(extensions: dict | None = None, **params) -> dict:
    if extensions is not None:
        params["extensions"] = json.dumps(extensions)
    return params


@pytest.fixture
async def api(settings):
    async with running_app(settings) as app, client_for(app, Role.ANALYST) as http:
        yield http


# --- automatic persisted queries (Apollo) ---------------------------------------------


async def test_unknown_hash_asks_for_the_query_and_is_not_cached(api):
    response = await api.post("/graphql", json={"extensions": apq(ME)})
    assert error_of(response) == (200, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
    assert response.headers["cache-control"] == NOT_CACHEABLE


async def test_query_sent_with_its_hash_is_stored_and_then_found_by_hash(api):
    registered = await api.post("/graphql", json={"query": ME, "extensions": apq(ME)})
    assert registered.json() == {"data": {"me": {"role": "ANALYST"}}}
    by_hash = await api.post("/graphql", json={"extensions": apq(ME)})
    assert by_hash.json() == {"data": {"me": {"role": "ANALYST"}}}


async def test_hashed_query_over_get(api):
    await api.post("/graphql", json={"query": ME, "extensions": apq(ME)})
    response = await api.get("/graphql", params=get_params(apq(ME)))
    assert response.status_code == 200
    assert response.json() == {"data": {"me": {"role": "ANALYST"}}}


async def test_registration_over_get_then_hash_only(api):
    query = "query Role { me { role } }"
    first = await api.get("/graphql", params=get_params(apq(query)))
    assert error_of(first)[1] == "PERSISTED_QUERY_NOT_FOUND"
    second = await api.get("/graphql", params=get_params(apq(query), query=query))
    assert second.json() == {"data": {"me": {"role": "ANALYST"}}}
    third = await api.get("/graphql", params=get_params(apq(query)))
    assert third.json() == {"data": {"me": {"role": "ANALYST"}}}


async def test_variables_and_operation_name_travel_with_a_hash(api):
    query = "query A { me { role } } query B($skip: Boolean!) { me @skip(if: $skip) { role } }"
    body = {"query": query, "extensions": apq(query), "operationName": "B"}
    assert (await api.post("/graphql", json={**body, "variables": {"skip": True}})).json() == {
        "data": {}
    }
    response = await api.post(
        "/graphql",
        json={"extensions": apq(query), "operationName": "B", "variables": {"skip": False}},
    )
    assert response.json() == {"data": {"me": {"role": "ANALYST"}}}


async def test_hash_that_does_not_match_the_query_is_400(api):
    response = await api.post("/graphql", json={"query": ME, "extensions": apq("{ me { id } }")})
    assert error_of(response) == (400, "BAD_REQUEST", "provided sha does not match query")
    # ... and nothing was stored under either hash.
    for text in (ME, "{ me { id } }"):
        missing = await api.post("/graphql", json={"extensions": apq(text)})
        assert error_of(missing)[1] == "PERSISTED_QUERY_NOT_FOUND"


@pytest.mark.parametrize("version", [0, 2, "1", None])
async def test_unsupported_version_is_400(api, version):
    response = await api.post("/graphql", json={"query": ME, "extensions": apq(ME, version)})
    assert error_of(response) == (400, "BAD_REQUEST", "Unsupported persisted query version")


@pytest.mark.parametrize("bad_hash", ["", "abc", "G" * 64, sha256(ME).upper(), 12])
async def test_malformed_hash_is_400(api, bad_hash):
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": bad_hash}}
    response = await api.post("/graphql", json={"extensions": extensions})
    assert response.status_code == 400 and error_of(response)[1] == "BAD_REQUEST"


async def test_neither_query_nor_hash_is_400(api):
    bodies: list[dict[str, Any]] = [{}, {"query": ""}, {"variables": {}}]
    for body in bodies:
        response = await api.post("/graphql", json=body)
        assert response.status_code == 400, body
        assert "non-empty `query` or a `persistedQuery`" in error_of(response)[2]


async def test_invalid_query_is_never_stored(api):
    for text in ("{ me { nope } }", "{ me { role ", "{ me(x: 1) { role } }"):
        first = await api.post("/graphql", json={"query": text, "extensions": apq(text)})
        assert first.status_code == 200 and first.json()["errors"], text
        again = await api.post("/graphql", json={"extensions": apq(text)})
        assert error_of(again)[1] == "PERSISTED_QUERY_NOT_FOUND", text


async def test_mutation_over_get_is_405_and_is_not_stored(api):
    mutation = "mutation Out { logout }"
    response = await api.get("/graphql", params=get_params(apq(mutation), query=mutation))
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    posted = await api.post("/graphql", json={"extensions": apq(mutation)})
    assert error_of(posted)[1] == "PERSISTED_QUERY_NOT_FOUND"


async def test_apq_turned_off_answers_not_supported(settings):
    async with (
        running_app(settings.with_overrides(apq_enabled=False)) as app,
        client_for(app, Role.ANALYST) as http,
    ):
        for body in ({"extensions": apq(ME)}, {"query": ME, "extensions": apq(ME)}):
            response = await http.post("/graphql", json=body)
            assert error_of(response) == (
                200,
                "PERSISTED_QUERY_NOT_SUPPORTED",
                "PersistedQueryNotSupported",
            )
            assert response.headers["cache-control"] == NOT_CACHEABLE
        # Plain queries and trusted documents still work.
        assert (await http.post("/graphql", json={"query": ME})).json()["data"]
        document_id, _ = trusted("TopDoctors")
        assert (
            "errors" not in (await http.post("/graphql", json={"documentId": document_id})).json()
        )


async def test_stored_queries_live_in_redis_with_the_ttl(settings, redis_url):
    async with running_app(settings.with_overrides(redis_url=redis_url, apq_ttl_s=123)) as app:
        async with client_for(app, Role.ANALYST) as http:
            query = f"query Fresh{sha256(redis_url)[:8]} {{ me {{ role }} }}"
            await http.post("/graphql", json={"query": query, "extensions": apq(query)})
        redis = app.state.services.redis
        key = f"caregraph:apq:{sha256(query)}"
        assert (await redis.get(key)).decode() == query
        assert 0 < await redis.ttl(key) <= 123
        await redis.delete(key)


async def test_servers_sharing_redis_share_registered_queries(settings, redis_url, tmp_path):
    query = f"query Shared{tmp_path.name[-8:].replace('-', '')} {{ me {{ role }} }}"
    async with (
        running_app(settings.with_overrides(redis_url=redis_url)) as first,
        running_app(settings.with_overrides(redis_url=redis_url)) as second,
        client_for(first, Role.ANALYST) as first_http,
        client_for(second, Role.ANALYST) as second_http,
    ):
        await first_http.post("/graphql", json={"query": query, "extensions": apq(query)})
        response = await second_http.post("/graphql", json={"extensions": apq(query)})
        assert response.json() == {"data": {"me": {"role": "ANALYST"}}}
        await first.state.services.redis.delete(f"caregraph:apq:{sha256(query)}")


async def test_redis_down_degrades_to_sending_the_full_query(settings, unused_tcp_port):
    dead = f"redis://127.0.0.1:{unused_tcp_port}/0"
    async with (
        running_app(settings.with_overrides(redis_url=dead)) as app,
        client_for(app, Role.ANALYST) as http,
    ):
        response = await http.post("/graphql", json={"extensions": apq(ME)})
        assert error_of(response)[1] == "PERSISTED_QUERY_NOT_FOUND"
        with_query = await http.post("/graphql", json={"query": ME, "extensions": apq(ME)})
        assert with_query.json() == {"data": {"me": {"role": "ANALYST"}}}


# --- trusted documents -------------------------------------------------------------------


async def test_trusted_document_by_id_by_apq_hash_and_by_text(api):
    document_id, body = trusted("MonthlyAppointmentTrend")
    variables = {"year": 2026}
    by_id = (
        await api.post("/graphql", json={"documentId": document_id, "variables": variables})
    ).json()
    assert "errors" not in by_id and by_id["data"]["monthlyAppointmentTrend"] is not None
    for sent in (
        api.post("/graphql", json={"extensions": apq(body), "variables": variables}),
        api.post("/graphql", json={"query": body, "variables": variables}),
        api.get("/graphql", params={"documentId": document_id, "variables": json.dumps(variables)}),
    ):
        assert (await sent).json()["data"] == by_id["data"]


async def test_unknown_document_id_is_404(api):
    for document_id in (f"sha256:{sha256('nope')}", "sha256:", "md5:abc", sha256(ME)):
        response = await api.post("/graphql", json={"documentId": document_id})
        assert error_of(response) == (404, "PERSISTED_QUERY_NOT_IN_LIST", "PersistedQueryNotInList")


async def test_document_id_with_a_body_is_400(api):
    document_id, body = trusted("TopDoctors")
    for extra in ({"query": body}, {"extensions": apq(body)}):
        response = await api.post("/graphql", json={"documentId": document_id, **extra})
        assert error_of(response)[:2] == (400, "CANNOT_SEND_PQ_ID_AND_BODY")


async def test_trusted_mutation_over_get_is_405(api):
    document_id, _ = trusted("CancelAppointment")
    response = await api.get("/graphql", params={"documentId": document_id})
    assert response.status_code == 405 and response.headers["allow"] == "POST"


async def test_a_trusted_document_skips_parsing_and_validation(api, monkeypatch):
    import schema.documents as documents

    prepared: list[str] = []
    original = documents.prepare_document

    def recording(schema: Any, query: str, **options: Any) -> Any:
        prepared.append(query)
        return original(schema, query, **options)

    monkeypatch.setattr(documents, "prepare_document", recording)
    document_id, _ = trusted("TopDoctors")
    assert "errors" not in (await api.post("/graphql", json={"documentId": document_id})).json()
    assert prepared == []
    await api.post("/graphql", json={"query": ME})
    assert prepared == [ME, ME]  # parse, then validate: both from one cached preparation


def test_a_broken_document_stops_the_start(settings, tmp_path):
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "Fine.graphql").write_text("query Fine { me { role } }")
    (queries / "Typo.graphql").write_text("query Typo { me { rolle } }")
    (queries / "Misnamed.graphql").write_text("query Other { me { role } }")
    (queries / "Two.graphql").write_text("query Two { me { role } } query Three { me { id } }")
    (queries / "Deep.graphql").write_text(
        "query Deep { patients { nodes { appointments { nodes { doctor { appointments {"
        " nodes { patient { appointments { nodes { doctor { name } } } } } } } } } } } }"
    )
    with pytest.raises(ManifestError) as raised:
        create_app(settings.with_overrides(queries_dir=queries))
    message = str(raised.value)
    for name in ("Typo", "Misnamed", "Two", "Deep"):
        assert f"{name}.graphql" in message
    assert "Fine.graphql" not in message


def test_build_manifest_command_writes_the_apollo_format(tmp_path):
    output = tmp_path / "manifest.json"
    completed = subprocess.run(
        [sys.executable, "-m", "cli", "build-manifest", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    manifest = json.loads(output.read_text())
    assert manifest["format"] == "apollo-persisted-query-manifest" and manifest["version"] == 1
    files = sorted(p.stem for p in (ROOT / "queries").glob("*.graphql"))
    assert sorted(op["name"] for op in manifest["operations"]) == files
    for operation in manifest["operations"]:
        body = (ROOT / "queries" / f"{operation['name']}.graphql").read_text(encoding="utf-8")
        assert operation["body"] == body and operation["id"] == sha256(body)
        assert operation["type"] in ("query", "mutation")


# --- document modes ----------------------------------------------------------------------


async def test_persisted_only_runs_trusted_documents_and_nothing_else(settings):
    async with (
        running_app(settings.with_overrides(document_mode=PERSISTED_ONLY)) as app,
        client_for(app, Role.ANALYST) as http,
    ):
        document_id, body = trusted("TopDoctors")
        assert (
            "errors" not in (await http.post("/graphql", json={"documentId": document_id})).json()
        )
        assert "errors" not in (await http.post("/graphql", json={"extensions": apq(body)})).json()

        free_form = await http.post("/graphql", json={"query": ME})
        assert error_of(free_form)[:2] == (400, "PERSISTED_QUERY_ID_REQUIRED")
        unknown_hash = await http.post("/graphql", json={"extensions": apq(ME)})
        assert error_of(unknown_hash)[:2] == (404, "PERSISTED_QUERY_NOT_IN_LIST")
        registration = await http.post("/graphql", json={"query": ME, "extensions": apq(ME)})
        assert error_of(registration)[:2] == (400, "CANNOT_SEND_PQ_ID_AND_BODY")
        unknown_id = await http.post("/graphql", json={"documentId": f"sha256:{sha256(ME)}"})
        assert error_of(unknown_id)[:2] == (404, "PERSISTED_QUERY_NOT_IN_LIST")


async def test_persisted_only_still_lets_anyone_sign_in_with_the_trusted_login(settings):
    async with (
        running_app(settings.with_overrides(document_mode=PERSISTED_ONLY)) as app,
        client_for(app) as http,
    ):
        document_id, _ = trusted("Login")
        response = await http.post(
            "/graphql",
            json={
                "documentId": document_id,
                "variables": {"email": "nobody@test.invalid", "password": "wrong password!"},
            },
        )
        body = response.json()
        assert response.status_code == 200
        assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_free_form_roles_keep_graphiql_on_a_persisted_only_deployment(settings):
    async with running_app(
        settings.with_overrides(
            document_mode=PERSISTED_ONLY,
            freeform_roles=frozenset({"ANALYST"}),
            graphiql=True,
        )
    ) as app:
        async with client_for(app, Role.ANALYST) as analyst:
            assert (await analyst.post("/graphql", json={"query": ME})).json() == {
                "data": {"me": {"role": "ANALYST"}}
            }
            registered = await analyst.post("/graphql", json={"query": ME, "extensions": apq(ME)})
            assert "errors" not in registered.json()
            page = await analyst.get("/graphql", headers={"accept": "text/html"})
            assert page.status_code == 200 and "GraphiQL" in page.text
        async with client_for(app, Role.DOCTOR) as integrator:
            refused = await integrator.post("/graphql", json={"query": ME})
            assert error_of(refused)[:2] == (400, "PERSISTED_QUERY_ID_REQUIRED")
            # Not even a query an analyst registered: the allow-list is queries/ only.
            by_hash = await integrator.post("/graphql", json={"extensions": apq(ME)})
            assert error_of(by_hash)[:2] == (404, "PERSISTED_QUERY_NOT_IN_LIST")
        async with client_for(app) as anonymous:
            refused = await anonymous.post("/graphql", json={"query": "{ __typename }"})
            assert error_of(refused)[:2] == (400, "PERSISTED_QUERY_ID_REQUIRED")


async def test_allow_list_audit_runs_and_logs_unknown_operations(settings, caplog):
    caplog.set_level(logging.WARNING, logger="caregraph.documents")
    async with (
        running_app(settings.with_overrides(document_mode=ALLOW_LIST_AUDIT)) as app,
        client_for(app, Role.ANALYST) as http,
    ):
        assert (await http.post("/graphql", json={"query": ME})).json()["data"]
        document_id, body = trusted("TopDoctors")
        await http.post("/graphql", json={"documentId": document_id})
        await http.post("/graphql", json={"query": body})
    audited = [r for r in caplog.records if r.getMessage() == "operation outside the allow-list"]
    assert len(audited) == 1
    assert audited[0].sha256 == sha256(ME) and audited[0].role == "ANALYST"


async def test_open_mode_logs_nothing(settings, caplog):
    caplog.set_level(logging.WARNING, logger="caregraph.documents")
    async with (
        running_app(settings.with_overrides(document_mode=OPEN)) as app,
        client_for(app, Role.ANALYST) as http,
    ):
        assert (await http.post("/graphql", json={"query": ME})).json()["data"]
    assert not [r for r in caplog.records if r.name == "caregraph.documents"]


def test_production_settings_default_to_persisted_only(monkeypatch):
    from settings import Settings

    monkeypatch.setenv("CAREGRAPH_ENV", "production")
    monkeypatch.setenv("CAREGRAPH_FREEFORM_ROLES", "analyst, ADMIN")
    production = Settings.from_env()
    assert production.document_mode == PERSISTED_ONLY
    assert production.freeform_roles == {"ANALYST", "ADMIN"}
    assert not production.graphiql and not production.introspection
    assert not production.demo_data  # no demo accounts on a real deployment
    monkeypatch.setenv("CAREGRAPH_DOCUMENT_MODE", "everything")
    with pytest.raises(ValueError, match="CAREGRAPH_DOCUMENT_MODE"):
        Settings.from_env()
    monkeypatch.delenv("CAREGRAPH_ENV")
    monkeypatch.delenv("CAREGRAPH_DOCUMENT_MODE")
    assert Settings.from_env().document_mode == OPEN


# --- CDN caching of hashed GETs ----------------------------------------------------------


async def test_anonymous_hashed_get_is_publicly_cacheable(settings):
    query = "query Ping { __typename }"
    async with running_app(settings) as app, client_for(app) as anonymous:
        await anonymous.post("/graphql", json={"query": query, "extensions": apq(query)})
        response = await anonymous.get("/graphql", params=get_params(apq(query)))
        assert response.json() == {"data": {"__typename": "Query"}}
        assert response.headers["cache-control"] == "public, max-age=60"
        assert response.headers["vary"] == "Authorization, Cookie"

        # The same text as a plain GET query, a POST, or a request with credentials
        # or errors: never stored by shared caches.
        for sent in (
            anonymous.get("/graphql", params={"query": query}),
            anonymous.post("/graphql", json={"extensions": apq(query)}),
            anonymous.get(
                "/graphql", params=get_params(apq(query)), headers={"authorization": "Bearer x"}
            ),
            anonymous.get("/graphql", params=get_params(apq(query)), headers={"cookie": "a=b"}),
        ):
            assert (await sent).headers["cache-control"] == "no-store"


async def test_signed_in_hashed_get_is_never_publicly_cacheable(api):
    await api.post("/graphql", json={"query": ME, "extensions": apq(ME)})
    response = await api.get("/graphql", params=get_params(apq(ME)))
    assert response.json()["data"] and response.headers["cache-control"] == "no-store"


async def test_anonymous_get_with_errors_is_not_cached(settings):
    async with running_app(settings) as app, client_for(app) as anonymous:
        await anonymous.post("/graphql", json={"query": ME, "extensions": apq(ME)})
        response = await anonymous.get("/graphql", params=get_params(apq(ME)))
        assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert response.headers["cache-control"] == "no-store"
