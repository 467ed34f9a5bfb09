"""The hardening checklist (DESIGN.md §5), one item after another, over HTTP.

Operation limits (depth, aliases, tokens, page size, cost), circular fragments and
absurd nesting are refused before any resolver runs, never with a 500: each refusal
is checked with the MongoDB and SQL round-trip counters (nothing but the one account
lookup that authenticates the caller), and a control runs the same operation on an
app whose limit is raised, so it is the limit, and nothing else, that refused it.
Then: introspection and suggestions in production mode, masked errors, the body cap,
batching, GET, CSRF, WebSockets, pinned versions and the security headers.

Read-only cases share one app per module over the shared world of records
(tests/support.py: one patient, one doctor, a future visit, a prescription, a bill); an
app with other settings runs over the same databases. Cases that write have apps of
their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import tomllib
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from starlette.applications import Starlette
from starlette.exceptions import StarletteDeprecationWarning
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import GraphQL

from app import create_app
from datasources.people import PatientStore
from tests.support import Api, World, build_world, default_schema, module_api, signed_in

schema = default_schema()

with warnings.catch_warnings():
    # Starlette would rather drive its TestClient with httpx2; httpx is what is installed.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {"production": True, "introspection": False, "graphiql": False}


# --- The shared app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def api(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with module_api(mongo_uri, tmp_path_factory.mktemp("hardening")) as api:
        yield api


@pytest.fixture(scope="module", autouse=True)
async def world(api: Api) -> World:
    """Written before the module's first test, so every test sees the same records."""
    return await build_world(api.client, api.services)


CREATE_PATIENT = "mutation($input: CreatePatientInput!) { createPatient(input: $input) { id } }"
PATIENT_INPUT = {
    "givenName": "Ada",
    "familyName": "Lovelace",
    "birthDate": "1980-12-10",
    "sex": "FEMALE",
}


def only_error(body: dict, code: str) -> dict:
    """The one error of a refused operation, which has no data at all."""
    assert body.get("data") is None, body
    errors = body.get("errors")
    assert errors and len(errors) == 1, body
    assert errors[0]["extensions"]["code"] == code, errors
    return errors[0]


# --- Operations of a chosen size ------------------------------------------------------------


def chain(depth: int) -> str:
    """An operation exactly `depth` fields deep, one record per level:
    patients > nodes > appointments > nodes > patient > appointments > ... > __typename."""
    levels = ["patients(first: 1)", "nodes"]
    cycle = ["appointments(first: 1)", "nodes", "patient"]
    while len(levels) < depth - 1:
        levels.append(cycle[(len(levels) - 2) % 3])
    levels = levels[: depth - 1]
    return "{ " + " { ".join(levels) + " { __typename" + " }" * depth


def fragment_chain(last: str) -> str:
    """Depth 11 spread over four nested fragments, then `last` inside the fourth."""
    hop = "appointments(first: 1) { nodes { patient { ...P%d } } }"
    return (
        "{ patients(first: 1) { nodes { ...P1 } } }\n"
        + "\n".join(f"fragment P{n} on Patient {{ {hop % (n + 1)} }}" for n in (1, 2, 3))
        + f"\nfragment P4 on Patient {{ {last} }}"
    )


DEPTH_12_IN_FRAGMENTS = fragment_chain("__typename")  # __typename at depth 12
DEPTH_13_IN_FRAGMENTS = fragment_chain("appointments(first: 1) { totalCount }")


def aliased(names: range, prefix: str = "a") -> str:
    return " ".join(f"{prefix}{n}: patients(first: 1) {{ totalCount }}" for n in names)


def aliases_at_root(count: int) -> str:
    return f"{{ {aliased(range(count))} }}"


def aliases_in_fragment(per_spread: int, spreads: int) -> str:
    """`per_spread` aliases in one fragment, spread `spreads` times (each spread counts)."""
    spread = " ".join(["...F"] * spreads)
    return f"{{ {spread} }} fragment F on Query {{ {aliased(range(per_spread))} }}"


def aliases_in_inline_fragments(count: int) -> str:
    half = count // 2
    return (
        f"{{ ... on Query {{ {aliased(range(half))} }}"
        f" ... on Query {{ {aliased(range(half, count))} }} }}"
    )


def operations(count: int) -> str:
    """`count` small operations in one document, 13 tokens each; run Q0."""
    return " ".join(f"query Q{n} {{ patients(first: 1) {{ totalCount }} }}" for n in range(count))


NESTED_PAGES = "{ patients(first: 500) { nodes { appointments(first: 500) { nodes { id } } } } }"
NESTED_PAGES_FROM_VARIABLE = (
    "query($n: Int!) { patients(first: $n) { nodes { appointments(first: $n) { nodes { id } } } } }"
)
PAGE_OVER_CAP = "{ patients(first: 501) { totalCount } }"
PAGE_OVER_CAP_NESTED = (
    "{ patients(first: 1) { nodes { appointments(first: 501) { totalCount } } } }"
)
PAGE_FROM_VARIABLE = "query($n: Int) { patients(first: $n) { nodes { id } } }"
PAGE_FROM_VARIABLE_DEFAULT = "query($n: Int = 501) { patients(first: $n) { nodes { id } } }"


# --- Limits: what passes ------------------------------------------------------------------

AT_THE_LIMITS = [
    pytest.param(chain(12), {}, id="depth-12"),
    pytest.param(DEPTH_12_IN_FRAGMENTS, {}, id="depth-12-in-nested-fragments"),
    pytest.param(aliases_at_root(50), {}, id="50-aliases"),
    pytest.param(
        aliases_in_fragment(25, spreads=2), {}, id="50-aliases-in-a-fragment-spread-twice"
    ),
    pytest.param(aliases_in_inline_fragments(50), {}, id="50-aliases-in-inline-fragments"),
    pytest.param(PAGE_FROM_VARIABLE, {"n": 500}, id="page-500-from-variable"),
    pytest.param(NESTED_PAGES_FROM_VARIABLE, {"n": 10}, id="nested-pages-of-10"),
    pytest.param(operations(230), {}, id="2990-tokens"),
]


@pytest.mark.parametrize(("query", "variables"), AT_THE_LIMITS)
async def test_operation_at_the_limits_runs(api, query, variables):
    settings = api.settings
    assert (settings.max_depth, settings.max_aliases, settings.max_tokens) == (12, 50, 3000)
    assert (settings.page_size_max, settings.max_cost) == (500, 25_000)
    operation = "Q0" if "query Q0" in query else None
    data = await api.data(query, variables, operationName=operation)
    assert data


def test_chain_is_as_deep_as_asked():
    """The depth fixtures are what they claim: count the open braces."""
    for depth in (2, 12, 13):
        assert max_nesting(chain(depth)) == depth
    assert chain(3) == "{ patients(first: 1) { nodes { __typename } } }"


def max_nesting(query: str) -> int:
    deepest = level = 0
    for character in query:
        level += {"{": 1, "}": -1}.get(character, 0)
        deepest = max(deepest, level)
    return deepest


async def test_depth_at_the_limit_reaches_the_last_record(api):
    """The depth-12 chain walks real records to its end, so depth 13 has something to refuse."""
    data = await api.data(chain(12))
    node = data["patients"]["nodes"][0]
    for field in ("appointments", "nodes", "patient") * 3:
        node = node[field][0] if field == "nodes" else node[field]
    assert node == {"__typename": "Patient"}


# --- Limits: what is refused, before any resolver -------------------------------------------

OVER_THE_LIMITS = [
    pytest.param(chain(13), {}, "MAX_DEPTH_LIMIT", id="depth-13"),
    pytest.param(DEPTH_13_IN_FRAGMENTS, {}, "MAX_DEPTH_LIMIT", id="depth-13-in-nested-fragments"),
    pytest.param(chain(60), {}, "MAX_DEPTH_LIMIT", id="depth-60"),
    pytest.param(aliases_at_root(51), {}, "MAX_ALIASES_LIMIT", id="51-aliases"),
    pytest.param(
        aliases_in_fragment(17, spreads=3), {}, "MAX_ALIASES_LIMIT",
        id="17-aliases-in-a-fragment-spread-3-times",
    ),
    pytest.param(
        aliases_in_inline_fragments(51), {}, "MAX_ALIASES_LIMIT",
        id="51-aliases-in-inline-fragments",
    ),
    pytest.param(operations(240), {}, "MAX_TOKENS_LIMIT", id="3120-tokens"),
    pytest.param(PAGE_OVER_CAP, {}, "BAD_USER_INPUT", id="first-501"),
    pytest.param(PAGE_OVER_CAP_NESTED, {}, "BAD_USER_INPUT", id="nested-first-501"),
    pytest.param(PAGE_FROM_VARIABLE, {"n": 501}, "BAD_USER_INPUT", id="first-501-from-variable"),
    pytest.param(PAGE_FROM_VARIABLE_DEFAULT, {}, "BAD_USER_INPUT", id="first-501-from-default"),
    pytest.param(NESTED_PAGES, {}, "COST_ESTIMATED_TOO_EXPENSIVE", id="nested-pages-of-500"),
    pytest.param(
        NESTED_PAGES_FROM_VARIABLE, {"n": 500}, "COST_ESTIMATED_TOO_EXPENSIVE",
        id="nested-pages-of-500-from-variable",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("query", "variables", "code"), OVER_THE_LIMITS)
async def test_operation_over_a_limit_is_refused_before_any_resolver(api, query, variables, code):
    api.reset()
    body = await api.post(query, variables, operationName="Q0" if "query Q0" in query else None)
    only_error(body, code)
    assert api.data_round_trips() == []


async def test_limit_errors_name_the_measure_and_the_limit(api):
    depth = only_error(await api.post(chain(13)), "MAX_DEPTH_LIMIT")
    assert (depth["extensions"]["measured"], depth["extensions"]["limit"]) == (13, 12)
    aliases = only_error(await api.post(aliases_in_fragment(17, 3)), "MAX_ALIASES_LIMIT")
    assert (aliases["extensions"]["measured"], aliases["extensions"]["limit"]) == (51, 50)
    page = only_error(await api.post(PAGE_FROM_VARIABLE, {"n": 501}), "BAD_USER_INPUT")
    assert page["extensions"]["limit"] == 500 and "501" in page["message"]
    for variables in ({}, {"n": 500}):
        query = NESTED_PAGES_FROM_VARIABLE if variables else NESTED_PAGES
        cost = only_error(await api.post(query, variables), "COST_ESTIMATED_TOO_EXPENSIVE")
        # 1 + 1 + 500 + 500 + 500 x 500: every appointment id of every patient of the page.
        assert cost["extensions"]["limit"] == 25_000
        assert cost["extensions"]["measured"] == 251_002


RAISED = [
    pytest.param(chain(13), {}, {"max_depth": 13}, id="depth-13-with-max_depth-13"),
    pytest.param(
        DEPTH_13_IN_FRAGMENTS, {}, {"max_depth": 13}, id="fragment-depth-13-with-max_depth-13"
    ),
    pytest.param(aliases_in_fragment(17, 3), {}, {"max_aliases": 51}, id="51-aliases-with-51"),
    pytest.param(operations(240), {}, {"max_tokens": 4000}, id="3120-tokens-with-4000"),
    pytest.param(PAGE_FROM_VARIABLE, {"n": 501}, {"page_size_max": 501}, id="501-with-max-501"),
    pytest.param(
        NESTED_PAGES_FROM_VARIABLE, {"n": 500}, {"max_cost": 300_000}, id="cost-with-300000"
    ),
]


@pytest.mark.parametrize(("query", "variables", "raised"), RAISED)
async def test_the_same_operation_runs_once_its_limit_is_raised(api, query, variables, raised):
    """The limit is what refused each operation above, and refusing it saved real work."""
    async with api.variant(**raised) as variant:
        variant.reset()
        data = await variant.data(
            query, variables, operationName="Q0" if "query Q0" in query else None
        )
        assert data
        assert variant.data_round_trips(), "the operation reads data once it runs"


async def test_mutations_over_the_alias_limit_leave_no_record(client, mongo_counter, sql_counter):
    def creates(count: int) -> str:
        fields = " ".join(f"p{n}: createPatient(input: $input) {{ id }}" for n in range(count))
        return f"mutation($input: CreatePatientInput!) {{ {fields} }}"

    count = "{ patients { totalCount } }"
    assert (await client.data(count))["patients"]["totalCount"] == 0
    mongo_counter.reset()
    sql_counter.reset()
    body = await client.post(creates(51), {"input": PATIENT_INPUT})
    only_error(body, "MAX_ALIASES_LIMIT")
    assert mongo_counter.commands == ["find"] and mongo_counter.collections == ["users"]
    assert sql_counter.statements == []
    assert (await client.data(count))["patients"]["totalCount"] == 0
    # Control: at the limit, every one of them is created.
    created = await client.data(creates(50), {"input": PATIENT_INPUT})
    assert len({patient["id"] for patient in created.values()}) == 50
    assert (await client.data(count))["patients"]["totalCount"] == 50


# --- Circular fragments and absurd nesting ----------------------------------------------------

CIRCULAR = [
    pytest.param(
        "{ patients(first: 1) { nodes { ...A } } }"
        " fragment A on Patient { id ...B } fragment B on Patient { name ...A }",
        id="A-B-A",
    ),
    pytest.param(
        "{ patients(first: 1) { nodes { ...A } } } fragment A on Patient { ...A }", id="A-A"
    ),
    pytest.param(
        "{ patients(first: 1) { nodes { ...A } } }"
        " fragment A on Patient { appointments { nodes { patient { ...A } } } }",
        id="A-through-fields-A",
    ),
    pytest.param(
        "{ ...Q } fragment Q on Query { patients(first: 1) { nodes { ...A } } }"
        " fragment A on Patient { ...B } fragment B on Patient { ...C }"
        " fragment C on Patient { ...A }",
        id="A-B-C-A-under-a-query-fragment",
    ),
]


@pytest.mark.parametrize("query", CIRCULAR)
async def test_circular_fragments_are_a_validation_error(api, query):
    api.reset()
    error = only_error(await api.post(query), "GRAPHQL_VALIDATION_FAILED")
    assert "Cannot spread fragment" in error["message"]
    assert api.data_round_trips() == []


NEST = 10_000


def fragment_hops(count: int, body: str, last: str, on: str = "Patient") -> str:
    """Fragments F0..F{count} spread one inside the next; F{count} holds `last`."""
    hops = "".join(f" fragment F{n} on {on} {{ {body % f'...F{n + 1}'} }}" for n in range(count))
    return hops + f" fragment F{count} on {on} {{ {last} }}"


ABSURD = (
    [
        pytest.param("{" + "a{" * NEST + "b" + "}" * (NEST + 1), id="unknown-fields-10000-deep"),
        pytest.param(
            "{ patients { nodes { appointments { nodes { patient {" * (NEST // 5)
            + " id"
            + " } } } } }" * (NEST // 5),
            id="real-fields-10000-deep",
        ),
        pytest.param(
            "{ ... on Query {" * NEST + " __typename" + " }" * (NEST + 1),
            id="inline-fragments-10000-deep",
        ),
        pytest.param(
            "{ patients(name: " + "[" * NEST + '"x"' + "]" * NEST + ") { totalCount } }",
            id="list-value-10000-deep",
        ),
    ]
    + [
        pytest.param(
            "{ patients { ...F0 } }"
            + fragment_hops(hops, "%s", "totalCount", on="PatientConnection"),
            id=f"{hops}-fragments-spread-in-a-chain",
        )
        for hops in (250, 360, 5000)
    ]
    + [
        pytest.param(
            "{ patients { nodes { ...F0 } } }"
            + fragment_hops(hops, "appointments { nodes { patient { %s } } }", "id"),
            id=f"{hops}-fragments-3-fields-deep-each",
        )
        for hops in (10, 20, 30, 40, 60, 170, 2000)
    ]
)


@pytest.mark.parametrize("query", ABSURD)
@pytest.mark.parametrize("max_tokens", [None, 10**6], ids=["default-tokens", "tokens-raised"])
async def test_absurd_documents_within_the_body_cap_are_client_errors(api, query, max_tokens):
    """Within the body cap, whatever the token limit: a 4xx or a GraphQL error, never a 500."""
    request = {"query": query, "operationName": "Q0" if "query Q0" in query else None}
    assert len(json.dumps(request)) < api.settings.max_body_bytes
    async with _maybe_variant(api, max_tokens) as variant:
        variant.reset()
        response = await variant.http.post("/graphql", json=request)
        assert response.status_code < 500, response.text[:500]
        body = response.json()
        assert body["errors"] and body.get("data") is None, body
        codes = {error["extensions"]["code"] for error in body["errors"]}
        assert codes <= {
            "MAX_TOKENS_LIMIT",
            "MAX_DEPTH_LIMIT",
            "COST_ESTIMATED_TOO_EXPENSIVE",
            "GRAPHQL_PARSE_FAILED",
            "GRAPHQL_VALIDATION_FAILED",
            "BAD_REQUEST",
        }, body["errors"]
        assert "Internal server error" not in response.text
        assert variant.data_round_trips() == []


@pytest.mark.parametrize("hops", [100, 150, 190])
async def test_long_chain_of_fragment_spreads_runs_without_a_recursion_error(api, hops):
    """Valid and cheap (one totalCount): answered, or refused by validation, never a 500."""
    query = "{ patients { ...F0 } }" + fragment_hops(
        hops, "%s", "totalCount", on="PatientConnection"
    )
    response = await api.http.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    if "errors" in body:
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    else:
        assert body["data"] == {"patients": {"totalCount": 1}}


@asynccontextmanager
async def _maybe_variant(api: Api, max_tokens: int | None, **more: Any) -> AsyncIterator[Api]:
    """The shared app, or one with the settings given that are not None."""
    overrides = {k: v for k, v in {"max_tokens": max_tokens, **more}.items() if v is not None}
    if not overrides:
        yield api
    else:
        async with api.variant(**overrides) as variant:
            yield variant


async def test_huge_documents_over_the_token_limit_say_so(api):
    for query in ("{ " + "__typename " * 23_000 + "}", operations(5000)):
        api.reset()
        body = await api.post(query, operationName="Q0")
        only_error(body, "MAX_TOKENS_LIMIT")
        assert api.data_round_trips() == []


# --- Production mode: introspection and suggestions ----------------------------------------

INTROSPECTION = [
    pytest.param("{ __schema { queryType { name } } }", id="__schema"),
    pytest.param('{ __type(name: "Patient") { fields { name } } }', id="__type"),
    pytest.param("{ s: __schema { types { name } } }", id="aliased-__schema"),
    pytest.param(
        "{ ...I } fragment I on Query { __schema { types { name } } }", id="__schema-in-fragment"
    ),
    pytest.param('{ ... on Query { __type(name: "User") { name } } }', id="__type-inline"),
]


@pytest.mark.parametrize("query", INTROSPECTION)
async def test_production_refuses_introspection(api, query):
    async with api.variant(**PRODUCTION) as production:
        production.reset()
        body = await production.post(query)
        # One error per introspection field asked for.
        assert body["data"] is None and body["errors"], body
        for error in body["errors"]:
            assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error
            assert "introspection has been disabled" in error["message"], error
        assert production.data_round_trips() == []
    # Control: the same query answers in development.
    assert await api.data(query)


async def test_production_still_answers___typename(api, world):
    async with api.variant(**PRODUCTION) as production:
        data = await production.data(
            "{ __typename patients(first: 1) { nodes { __typename id } } }"
        )
    assert data["__typename"] == "Query"
    assert data["patients"]["nodes"] == [{"__typename": "Patient", "id": world.patient}]


async def test_development_introspection_returns_the_schema(api):
    data = await api.data("{ __schema { types { name } } }")
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"Patient", "Doctor", "Appointment", "Bill", "Mutation"} <= names


SUGGESTIBLE = [
    pytest.param("{ patients { nodes { nme } } }", {}, id="field"),
    pytest.param("{ patients(frist: 1) { totalCount } }", {}, id="argument"),
    pytest.param("{ appointments(status: COMPLETE) { totalCount } }", {}, id="enum-literal"),
    pytest.param(
        "query($s: AppointmentStatus) { appointments(status: $s) { totalCount } }",
        {"s": "COMPLETE"},
        id="enum-variable",
    ),
    pytest.param(CREATE_PATIENT, {"input": {**PATIENT_INPUT, "givenNme": "A"}}, id="input-field"),
    pytest.param("{ patients { nodes { ...P } } } fragment P on Patiet { id }", {}, id="type-name"),
]


@pytest.mark.parametrize(("query", "variables"), SUGGESTIBLE)
async def test_production_errors_carry_no_suggestions(api, query, variables):
    async with api.variant(**PRODUCTION) as production:
        production.reset()
        response = await production.http.post(
            "/graphql", json={"query": query, "variables": variables}
        )
        body = response.json()
        assert body["errors"] and body.get("data") is None, body
        assert body["errors"][0]["extensions"]["code"] in {
            "GRAPHQL_VALIDATION_FAILED",
            "BAD_USER_INPUT",
        }
        assert "Did you mean" not in response.text, response.text
        assert production.data_round_trips() == []
    # Control: development mode helps with the same mistake.
    response = await api.http.post("/graphql", json={"query": query, "variables": variables})
    assert "Did you mean" in response.text, response.text


async def test_production_serves_no_graphiql_and_no_schema(api):
    async with api.variant(**PRODUCTION) as production:
        page = await production.http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code >= 400 and "<html" not in page.text.lower()
        assert (await production.http.get("/graphiql/schema.graphql")).status_code == 404
    page = await api.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "<html" in page.text.lower()


# --- Masked errors ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [{}, PRODUCTION], ids=["development", "production"])
async def test_unexpected_exception_is_masked_and_the_rest_arrives(
    api, world, monkeypatch, caplog, mode
):
    def explode(**_: Any) -> None:
        raise RuntimeError("secret detail: mongodb://admin:hunter2@db")

    monkeypatch.setattr(PatientStore, "search_filter", staticmethod(explode))
    query = "{ patients(first: 1) { totalCount } doctors(first: 1) { nodes { id } } }"
    async with _maybe_mode(api, mode) as variant, _logged(caplog):
        response = await variant.http.post("/graphql", json={"query": query})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"patients": None, "doctors": {"nodes": [{"id": world.doctor}]}}
    assert body["errors"] == [
        {
            "message": "Internal server error",
            "locations": [{"line": 1, "column": 3}],
            "path": ["patients"],
            "extensions": {"code": "INTERNAL_SERVER_ERROR"},
        }
    ]
    assert "secret" not in response.text and "hunter2" not in response.text
    assert "RuntimeError" not in response.text and "Traceback" not in response.text
    # The details go to the log instead.
    assert "secret detail" in caplog.text


@asynccontextmanager
async def _maybe_mode(api: Api, mode: dict) -> AsyncIterator[Api]:
    if not mode:
        yield api
    else:
        async with api.variant(**mode) as variant:
            yield variant


@asynccontextmanager
async def _logged(caplog: pytest.LogCaptureFixture) -> AsyncIterator[None]:
    with caplog.at_level(logging.ERROR):
        yield


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
    from app import CareGraphView

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


# --- Fragment bombs ----------------------------------------------------------------------


def fragment_bomb(levels: int, width: int, root: str, on: str, leaf: str) -> str:
    """Each fragment spreads the next `width` times: width^levels fields in a few bytes."""
    return (
        root
        + "".join(
            f" fragment F{n} on {on} {{ {' '.join([f'...F{n + 1}'] * width)} }}"
            for n in range(levels)
        )
        + f" fragment F{levels} on {on} {{ {leaf} }}"
    )


BOMBS = [
    pytest.param(20, 2, "{ ...F0 }", "Query", "__typename", id="2^20-at-the-root"),
    pytest.param(10, 10, "{ ...F0 }", "Query", "__typename", id="10^10-at-the-root"),
    pytest.param(
        10, 10, "{ patients(first: 0) { nodes { ...F0 } } }", "Patient", "id",
        id="10^10-under-an-empty-page",
    ),
    pytest.param(
        10, 10, "{ patients(first: 1) { nodes { ...F0 } } }", "Patient", "id",
        id="10^10-under-a-page-of-1",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("levels", "width", "root", "on", "leaf"), BOMBS)
async def test_fragment_bomb_is_refused_at_once(api, levels, width, root, on, leaf):
    """A few hundred bytes that expand to billions of fields: refused in milliseconds."""
    api.reset()
    started = time.perf_counter()
    body = await api.post(fragment_bomb(levels, width, root, on, leaf))
    elapsed = time.perf_counter() - started
    error = only_error(body, "COST_ESTIMATED_TOO_EXPENSIVE")
    assert error["extensions"]["measured"] > error["extensions"]["limit"]
    assert api.data_round_trips() == []
    assert elapsed < 2, f"measuring the operation took {elapsed:.1f} s"


@pytest.mark.parametrize("max_cost", [None, 2**62], ids=["default-budget", "budget-2^62"])
async def test_astronomical_cost_estimate_is_reported_not_a_500(api, max_cost):
    """Nested default pages multiply: 100^45 does not fit the 64 bits orjson takes. The
    walk stops once over budget; a budget raised past 2^53 meets the estimate's ceiling."""
    query = "{ patients { nodes { ...F0 } } }" + fragment_hops(
        15, "appointments { nodes { patient { %s } } }", "id"
    )
    async with _maybe_variant(api, None, max_cost=max_cost) as variant:
        async with signed_in(variant.app, raise_app_exceptions=False) as anonymous:
            response = await anonymous.http.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text[:300]
    errors = {e["extensions"]["code"]: e["extensions"] for e in response.json()["errors"]}
    if max_cost is None:
        assert errors.keys() <= {"MAX_DEPTH_LIMIT", "COST_ESTIMATED_TOO_EXPENSIVE"}, errors
        assert 25_000 < errors["COST_ESTIMATED_TOO_EXPENSIVE"]["measured"] <= 2**53 - 1
    else:
        assert errors.keys() == {"MAX_DEPTH_LIMIT"}, errors
