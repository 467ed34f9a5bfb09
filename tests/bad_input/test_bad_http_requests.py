"""HTTP requests that are not GraphQL requests: a client error, never a 500, and nothing
changed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.bad_input.support import CREATE_DOCTOR, assert_unchanged, doctor_input, stored_state

# --- HTTP requests that are not GraphQL requests -------------------------------------------

JSON = {"content-type": "application/json"}
A_QUERY = "{ patients { totalCount } }"
NAMED = "query($name: String) { patients(name: $name) { totalCount } }"
DEEPLY_NESTED = b'{"query": "{ me { id } }", "variables": %s}' % (b"[" * 100_000 + b"]" * 100_000)


def ascii_json(query: str, **variables: Any) -> dict[str, Any]:
    """A JSON body with non-ASCII escaped (\\uXXXX): httpx's encoder cannot write these."""
    return {"content": json.dumps({"query": query, "variables": variables}), "headers": JSON}


HTTP_CASES = [
    pytest.param("POST", {"content": b"{bad json", "headers": JSON}, id="malformed-json"),
    pytest.param("POST", {"content": b'{"query": "{ x }"', "headers": JSON}, id="truncated-json"),
    pytest.param("POST", {"content": b"", "headers": JSON}, id="empty-json-body"),
    pytest.param("POST", {}, id="no-body"),
    pytest.param("POST", {"json": {}}, id="neither-query-nor-anything"),
    pytest.param("POST", {"json": {"query": None}}, id="null-query"),
    pytest.param("POST", {"json": {"query": 5}}, id="query-not-a-string"),
    pytest.param("POST", {"json": {"query": A_QUERY, "variables": "x"}}, id="variables-a-string"),
    pytest.param("POST", {"json": []}, id="empty-batch"),
    pytest.param("POST", {"json": 123}, id="json-number-body"),
    pytest.param("POST", {"json": A_QUERY}, id="json-string-body"),
    pytest.param("POST", {"content": b"null", "headers": JSON}, id="json-null-body"),
    pytest.param(
        "POST",
        {"content": A_QUERY.encode(), "headers": {"content-type": "text/plain"}},
        id="text-plain-body",
    ),
    pytest.param("GET", {"headers": {"accept": "application/json"}}, id="get-without-query"),
    pytest.param(
        "GET",
        {"params": {"query": A_QUERY, "variables": "{bad"}},
        id="get-with-malformed-variables",
    ),
    pytest.param(
        "POST",
        {"json": {"query": A_QUERY, "variables": {"pad": "x" * 300_000}}},
        id="body-over-the-size-limit",
    ),
    # Valid JSON to json.loads, but it used to fail later as a 500: nesting deep enough
    # for a RecursionError, and lone surrogates (no store or hash can encode them).
    pytest.param("POST", {"content": DEEPLY_NESTED, "headers": JSON}, id="json-nested-too-deep"),
    pytest.param(
        "POST",
        ascii_json(CREATE_DOCTOR, input=doctor_input(givenName="Gr\ud800")),
        id="lone-surrogate-in-variables",
    ),
    pytest.param(
        "GET",
        {"params": {"query": NAMED, "variables": json.dumps({"name": "\ud800"})}},
        id="get-with-lone-surrogate-in-variables",
    ),
]


@pytest.mark.parametrize(("method", "request_options"), HTTP_CASES)
async def test_request_that_is_not_graphql_is_a_client_error(api, method, request_options):
    before = await stored_state(api.services)
    response = await api.http.request(method, "/graphql", **request_options)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    await assert_unchanged(api.services, before)


async def test_mutation_over_get_is_refused(api, ids):
    before = await stored_state(api.services)
    query = f'mutation {{ deleteBill(id: "{ids.unpaid_bill}") }}'
    response = await api.http.get(
        "/graphql", params={"query": query}, headers={"accept": "application/json"}
    )
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    await assert_unchanged(api.services, before)
