"""The HTTP side of the hardening checklist (DESIGN.md §5): the body cap, no batching,
queries but never mutations over GET, CSRF (posts a browser sends cross-site), no
WebSockets, pinned versions past the advisories, and the security headers on every
response.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import warnings
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import GraphQL

from app import create_app
from tests.hardening.support import CREATE_PATIENT, PATIENT_INPUT, chain
from tests.support import default_schema, signed_in

schema = default_schema()

with warnings.catch_warnings():
    # Starlette would rather drive its TestClient with httpx2; httpx is what is installed.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parents[2]  # the repository


# --- HTTP: body cap, batching, GET, CSRF ----------------------------------------------------

JSON = {"content-type": "application/json"}


def padded_body(size: int) -> bytes:
    """A JSON request for `{ patients { totalCount } }` exactly `size` bytes long."""
    start = b'{"query": "{ patients { totalCount } }", "variables": {"pad": "'
    end = b'"}}'
    body = start + b"x" * (size - len(start) - len(end)) + end
    assert len(body) == size
    return body


async def test_body_over_the_cap_is_413_before_anything_runs(api):
    cap = api.settings.max_body_bytes
    assert cap == 256 * 1024
    api.reset()
    response = await api.http.post("/graphql", content=padded_body(cap + 1), headers=JSON)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert api.data_round_trips() == []
    assert api.mongo.commands == [], "refused before even authenticating"
    # Control: exactly at the cap, the same request runs.
    response = await api.http.post("/graphql", content=padded_body(cap), headers=JSON)
    assert response.status_code == 200 and "errors" not in response.json(), response.text


async def test_chunked_body_over_the_cap_without_length_is_413(api):
    cap = api.settings.max_body_bytes
    chunk = 16 * 1024

    def chunks(body: bytes):
        async def stream():
            for offset in range(0, len(body), chunk):
                yield body[offset : offset + chunk]

        return stream()

    api.reset()
    response = await api.http.post("/graphql", content=chunks(padded_body(cap + 1)), headers=JSON)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert api.data_round_trips() == []
    # Control: the same stream one byte shorter runs.
    response = await api.http.post("/graphql", content=chunks(padded_body(cap)), headers=JSON)
    assert response.status_code == 200 and "errors" not in response.json(), response.text


@pytest.mark.parametrize("length", ["abc", "-1", str(10**12)])
async def test_declared_length_that_is_not_a_small_number_is_413(api, length):
    response = await api.http.post(
        "/graphql",
        content=b'{"query": "{ __typename }"}',
        headers={**JSON, "content-length": length},
    )
    assert response.status_code == 413


BATCHES = [
    pytest.param([{"query": "{ patients { totalCount } }"}], id="one"),
    pytest.param([{"query": "{ patients { totalCount } }"}] * 2, id="two"),
    pytest.param([{"query": CREATE_PATIENT, "variables": {"input": PATIENT_INPUT}}], id="mutation"),
]  # fmt: skip


@pytest.mark.parametrize("batch", BATCHES)
async def test_array_batches_are_refused(api, batch):
    api.reset()
    response = await api.http.post("/graphql", json=batch)
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert api.data_round_trips() == []


async def test_query_over_get_runs(api, world):
    response = await api.http.get(
        "/graphql",
        params={"query": "query($id: ID!) { patient(id: $id) { id } }",
                "variables": json.dumps({"id": world.patient})},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.json() == {"data": {"patient": {"id": world.patient}}}


def trusted_document_hash(name: str) -> str:
    return hashlib.sha256((ROOT / "queries" / f"{name}.graphql").read_bytes()).hexdigest()


CANCEL = 'mutation($id: ID!) { cancelAppointment(id: $id, reason: "via GET") { __typename } }'


async def test_mutation_over_get_is_405_and_changes_nothing(api, world):
    cancel_hash = trusted_document_hash("CancelAppointment")
    variables = json.dumps({"id": world.appointment, "reason": "via GET"})
    # An APQ hash registered by a POST that ran (and failed: the id matches nothing).
    registered = (
        'mutation Cancel($id: ID!) { cancelAppointment(id: $id, reason: "x") { __typename } }'
    )
    registered_hash = hashlib.sha256(registered.encode()).hexdigest()
    unknown = await api.post(
        registered,
        {"id": "0123456789abcdef01234567"},
        extensions={"persistedQuery": {"version": 1, "sha256Hash": registered_hash}},
    )
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    requests = {
        "query-text": {"query": CANCEL, "variables": variables},
        "query-text-named": {
            "query": 'query Q { __typename } mutation M { createPatient(input: {givenName: "A",'
            ' familyName: "B", birthDate: "1980-01-01", sex: FEMALE}) { id } }',
            "operationName": "M",
        },
        "document-id": {"documentId": f"sha256:{cancel_hash}", "variables": variables},
        "apq-hash-of-trusted": {
            "extensions": json.dumps({"persistedQuery": {"version": 1, "sha256Hash": cancel_hash}}),
            "variables": variables,
        },
        "apq-hash-registered": {
            "extensions": json.dumps(
                {"persistedQuery": {"version": 1, "sha256Hash": registered_hash}}
            ),
            "variables": variables,
        },
    }
    for name, params in requests.items():
        api.reset()
        response = await api.http.get(
            "/graphql", params=params, headers={"accept": "application/json"}
        )
        assert response.status_code == 405, (name, response.status_code, response.text)
        assert response.headers["allow"] == "POST", name
        assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST", name
        assert api.data_round_trips() == [], (name, api.data_round_trips())
    data = await api.data(
        "query($id: ID!) { appointment(id: $id) { status } patients { totalCount } }",
        {"id": world.appointment},
    )
    assert data == {"appointment": {"status": "SCHEDULED"}, "patients": {"totalCount": 1}}


NOT_JSON_POSTS = [
    pytest.param(
        {"data": {"query": CANCEL}}, id="form-urlencoded"
    ),
    pytest.param(
        {"files": {"operations": (None, json.dumps({"query": CANCEL})), "map": (None, "{}")}},
        id="multipart-form-data",
    ),
    pytest.param(
        {"content": json.dumps({"query": CANCEL}), "headers": {"content-type": "text/plain"}},
        id="text-plain",
    ),
    pytest.param(
        {"content": json.dumps({"query": CANCEL}),
         "headers": {"content-type": "text/plain;charset=UTF-8"}},
        id="text-plain-charset",
    ),
    pytest.param({"content": json.dumps({"query": CANCEL}), "headers": {}}, id="no-content-type"),
    pytest.param(
        {"content": json.dumps({"query": CANCEL}),
         "headers": {"content-type": "application/graphql"}},
        id="application-graphql",
    ),
]  # fmt: skip


@pytest.mark.parametrize("request_options", NOT_JSON_POSTS)
async def test_posts_a_browser_sends_cross_site_are_415(api, world, request_options):
    api.reset()
    response = await api.http.post(
        "/graphql", params={"variables": json.dumps({"id": world.appointment})}, **request_options
    )
    assert response.status_code == 415, response.text
    assert response.headers["accept-post"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    assert api.data_round_trips() == []
    data = await api.data(
        "query($id: ID!) { appointment(id: $id) { status } }", {"id": world.appointment}
    )
    assert data["appointment"]["status"] == "SCHEDULED"


async def test_json_with_a_charset_is_accepted(api):
    response = await api.http.post(
        "/graphql",
        content=json.dumps({"query": "{ __typename }"}),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200 and response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "accept", [None, "application/json", "*/*", "application/graphql-response+json"]
)
async def test_get_without_query_is_a_json_400_not_graphiql(api, accept):
    headers = {"accept": accept} if accept else {}
    response = await api.http.get("/graphql", headers=headers)
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    # Control: a browser asking for HTML gets GraphiQL (enabled in development).
    page = await api.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


# --- WebSockets ------------------------------------------------------------------------------


@pytest.mark.parametrize("subprotocol", ["graphql-transport-ws", "graphql-ws", None])
@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "anonymous"])
def test_websockets_are_refused(api, subprotocol, signed_in):
    # Starlette's TestClient (the client that speaks WebSocket) runs the app's lifespan
    # in a loop of its own, so it gets an app of its own on the module's databases.
    application = create_app(api.settings)
    headers = {"Authorization": f"Bearer {api.token}"} if signed_in else {}
    with TestClient(application) as test_client:
        # The token is good: a plain request with it is answered.
        check = test_client.post("/graphql", json={"query": "{ me { id } }"}, headers=headers)
        assert check.status_code == 200
        assert (check.json()["data"]["me"] is not None) == signed_in
        assert websocket_handshake(test_client, subprotocol, headers) is None


def test_the_websocket_check_sees_an_endpoint_that_accepts():
    """Control: Strawberry's view as it comes, on the same schema, accepts both protocols."""
    view = GraphQL(schema)
    application = Starlette(routes=[Route("/graphql", view), WebSocketRoute("/graphql", view)])
    with TestClient(application) as test_client:
        for subprotocol in ("graphql-transport-ws", "graphql-ws"):
            assert websocket_handshake(test_client, subprotocol, {}) == subprotocol


def websocket_handshake(
    test_client: TestClient, subprotocol: str | None, headers: dict[str, str]
) -> str | None:
    """The subprotocol the server accepted ("" for none), or None if it refused."""
    try:
        with test_client.websocket_connect(
            "/graphql", subprotocols=[subprotocol] if subprotocol else [], headers=headers
        ) as websocket:
            return websocket.accepted_subprotocol or ""
    except WebSocketDisconnect:
        return None


# --- Versions --------------------------------------------------------------------------------

FLOORS = {"strawberry-graphql": "0.327.2", "pyjwt": "2.15.1"}


@pytest.mark.parametrize(("package", "floor"), FLOORS.items())
def test_installed_versions_are_past_the_2026_advisories(package, floor):
    assert Version(metadata.version(package)) >= Version(floor)


@pytest.mark.parametrize(("package", "floor"), FLOORS.items())
def test_pyproject_pins_the_floors(package, floor):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = {
        Requirement(line).name.lower(): Requirement(line) for line in project["dependencies"]
    }
    specifier = requirements[package].specifier
    assert specifier.contains(floor), (package, str(specifier))
    below = Version(floor).release
    just_below = ".".join(map(str, (*below[:-1], below[-1] - 1)))
    assert not specifier.contains(just_below), (package, str(specifier))
    assert not specifier.contains("0.1"), (package, str(specifier))


# --- Security headers ------------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


async def test_security_headers_on_every_response(api):
    big = padded_body(api.settings.max_body_bytes + 1)
    responses = {
        "query": await api.http.post("/graphql", json={"query": "{ __typename }"}),
        "graphql-error": await api.http.post("/graphql", json={"query": chain(13)}),
        "resolver-error": await api.http.post(
            "/graphql", json={"query": '{ patient(id: "nope") { id } }'}
        ),
        "get-query": await api.http.get("/graphql", params={"query": "{ __typename }"}),
        "graphiql": await api.http.get("/graphql", headers={"accept": "text/html"}),
        "bad-json": await api.http.post("/graphql", content=b"{", headers=JSON),
        "batch": await api.http.post("/graphql", json=[]),
        "form": await api.http.post("/graphql", data={"query": "{ __typename }"}),
        "too-large": await api.http.post("/graphql", content=big, headers=JSON),
        "mutation-over-get": await api.http.get("/graphql", params={"query": CANCEL}),
        "method": await api.http.put("/graphql", json={"query": "{ __typename }"}),
        "health": await api.http.get("/healthz"),
        "not-found": await api.http.get("/nowhere"),
    }
    async with signed_in(api.app) as anonymous:
        responses["anonymous"] = await anonymous.http.post(
            "/graphql", json={"query": "{ patients { totalCount } }"}
        )
    statuses = {name: response.status_code for name, response in responses.items()}
    assert statuses["too-large"] == 413 and statuses["mutation-over-get"] == 405, statuses
    for name, response in responses.items():
        headers = {key: response.headers.get(key) for key in SECURITY_HEADERS}
        assert headers == SECURITY_HEADERS, (name, response.status_code, headers)


async def test_a_crash_outside_graphql_is_a_masked_500_with_the_usual_headers(api, monkeypatch):
    """Not a resolver error (those are masked in the response): the view itself fails."""
    from web.graphql_view import CareGraphView

    async def crash(self, request, response):
        raise RuntimeError("secret detail: mongodb://admin:hunter2@db")

    monkeypatch.setattr(CareGraphView, "get_context", crash)
    response = await api.http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    assert response.json() == {
        "errors": [
            {"message": "Internal server error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
        ]
    }
    assert "hunter2" not in response.text
    headers = {key: response.headers.get(key) for key in SECURITY_HEADERS}
    assert headers == SECURITY_HEADERS
