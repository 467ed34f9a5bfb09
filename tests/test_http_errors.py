"""Every HTTP answer of the API is JSON with `extensions.code`, including the ones the
router gives before any endpoint runs (unknown path, method not routed)."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
async def http(app):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        yield client


def assert_json_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == code
    assert error["message"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_an_unrouted_method_on_graphql_is_a_json_405(http, method):
    response = await http.request(method, "/graphql", json={"query": "{ me { id } }"})
    assert_json_error(response, 405, "BAD_REQUEST")
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


async def test_a_post_to_the_health_check_is_a_json_405(http):
    assert_json_error(await http.post("/healthz"), 405, "BAD_REQUEST")


@pytest.mark.parametrize("path", ["/", "/nope", "/graphql/extra", "/.env"])
async def test_an_unknown_path_is_a_json_404(http, path):
    response = await http.get(path)
    assert_json_error(response, 404, "NOT_FOUND")
    assert path in response.json()["errors"][0]["message"]
