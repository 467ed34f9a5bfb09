"""The hardening checklist (DESIGN.md §5), one item after another, over HTTP.

Read-only cases of each module share one app over the shared world of records
(tests/support.py: one patient, one doctor, a future visit, a prescription, a bill); an
app with other settings (`Api.variant`) runs over the same databases. Cases that write
have apps of their own (the `client` fixture).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import Api, World, build_world, module_api


@pytest.fixture(scope="module")
async def api(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with module_api(mongo_uri, tmp_path_factory.mktemp("hardening")) as api:
        yield api


@pytest.fixture(scope="module", autouse=True)
async def world(api: Api) -> World:
    """Written before the module's first test, so every test sees the same records."""
    return await build_world(api.client, api.services)
