"""What the hardening tests share: production mode's settings, a valid patient, the
one error of a refused operation, and the shared app or a variant of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.support import Api

PRODUCTION = {"production": True, "introspection": False, "graphiql": False}

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


@asynccontextmanager
async def _maybe_variant(api: Api, max_tokens: int | None, **more: Any) -> AsyncIterator[Api]:
    """The shared app, or one with the settings given that are not None."""
    overrides = {k: v for k, v in {"max_tokens": max_tokens, **more}.items() if v is not None}
    if not overrides:
        yield api
    else:
        async with api.variant(**overrides) as variant:
            yield variant


def chain(depth: int) -> str:
    """An operation exactly `depth` fields deep, one record per level:
    patients > nodes > appointments > nodes > patient > appointments > ... > __typename."""
    levels = ["patients(first: 1)", "nodes"]
    cycle = ["appointments(first: 1)", "nodes", "patient"]
    while len(levels) < depth - 1:
        levels.append(cycle[(len(levels) - 2) % 3])
    levels = levels[: depth - 1]
    return "{ " + " { ".join(levels) + " { __typename" + " }" * depth
