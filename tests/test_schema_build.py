"""build_schema(settings) carries the deployment's limits in the schema itself: the bare
schema refuses what HTTP refuses, building twice changes nothing, and a schema without
settings cannot be built at all (it would run without limits)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from strawberry.types.base import get_object_definition

from schema import POLICED_TYPES, PolicyPermission, build_schema
from settings import Settings
from tests.hardening.support import chain

DEPTH_21 = chain(21)


def codes(result) -> list[str | None]:
    return [(error.extensions or {}).get("code") for error in result.errors or []]


@pytest.mark.parametrize("context", [None, object()], ids=["no-context", "foreign-context"])
async def test_the_bare_schema_refuses_an_operation_over_the_depth_limit(context):
    schema = build_schema(Settings(max_depth=12))
    result = await schema.execute(DEPTH_21, context_value=context)
    assert codes(result) == ["MAX_DEPTH_LIMIT"]
    assert result.data is None  # refused before execution: no resolver ran
    assert result.errors and result.errors[0].extensions
    assert result.errors[0].extensions["measured"] == 21


async def test_the_bare_schema_refuses_an_operation_over_the_token_limit():
    schema = build_schema(Settings(max_tokens=50))
    query = "{ " + " ".join(f"a{n}: __typename" for n in range(40)) + " }"
    result = await schema.execute(query)
    assert result.data is None and result.errors
    assert "token" in result.errors[0].message.lower()


async def test_the_bare_schema_follows_the_introspection_setting():
    closed = await build_schema(Settings(introspection=False)).execute(
        "{ __schema { types { name } } }"
    )
    assert closed.data is None and closed.errors
    opened = await build_schema(Settings(introspection=True)).execute(
        "{ __schema { queryType { name } } }"
    )
    assert opened.errors is None and opened.data == {"__schema": {"queryType": {"name": "Query"}}}


async def test_http_refuses_the_same_operation(client):
    body = await client.post(DEPTH_21)
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["MAX_DEPTH_LIMIT"]


async def test_each_schema_keeps_its_own_limits():
    strict = build_schema(Settings(max_depth=3))
    lenient = build_schema(replace(Settings(), max_depth=30))
    assert codes(await strict.execute(chain(5))) == ["MAX_DEPTH_LIMIT"]
    # Past the limits, it executes (and fails for want of a request context).
    assert "MAX_DEPTH_LIMIT" not in codes(await lenient.execute(chain(5)))


def _policy_checks() -> list[int]:
    return [
        sum(isinstance(extension, PolicyPermission) for extension in field.extensions)
        for object_type in POLICED_TYPES
        for field in get_object_definition(object_type, strict=True).fields
    ]


def test_building_the_schema_again_does_not_stack_permission_checks():
    build_schema(Settings())
    once = _policy_checks()
    build_schema(Settings())
    build_schema(Settings(production=True))
    assert _policy_checks() == once
    assert max(once) == 1 and sum(once) > 50


def test_a_schema_cannot_be_built_without_settings():
    with pytest.raises(TypeError, match="Settings"):
        build_schema(None)  # type: ignore[arg-type]  # the point: callers that pass nothing
