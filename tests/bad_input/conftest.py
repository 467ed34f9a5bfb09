"""Bad input gets a clear, typed error (`extensions.code`, never a 500 or a stack trace)
and changes nothing: after every refused request the stored data is compared, document
by document and row by row, with what was stored before it.

The cases of each module run against one app, loaded with the same small demo data set
as the `demo` fixture (plus one future appointment, booked by `ids`). Sharing it is
sound because no case may change anything, which each case checks; a fresh app per case
would cost about half a second each. The control test, which does write, has its own app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from demo.generator import load_demo_data
from tests.bad_input.support import Ids, discover_ids
from tests.conftest import DEMO_ANCHOR
from tests.support import Api, module_api


@pytest.fixture(scope="module")
async def api(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    async with module_api(mongo_uri, tmp_path_factory.mktemp("bad_input")) as api:
        await load_demo_data(api.services, seed=7, size="small", anchor=DEMO_ANCHOR, progress=False)
        yield api


@pytest.fixture(scope="module")
async def ids(api: Api) -> Ids:
    """Real ids from the demo data, and the future appointment booked at BOOKED_SLOT."""
    return await discover_ids(api.client)
