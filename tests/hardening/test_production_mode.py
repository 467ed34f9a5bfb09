"""Production mode (DESIGN.md §5): no introspection, no suggestions in errors, no
GraphiQL; and unexpected exceptions are masked in every mode, the rest of the answer
still arriving.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from datasources.people import PatientStore
from tests.hardening.support import CREATE_PATIENT, PATIENT_INPUT, PRODUCTION
from tests.support import Api

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
