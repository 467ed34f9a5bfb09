"""The in-process Redis stand-in and a real Redis answer the same for what we use."""

from __future__ import annotations

import pytest

from datasources.redis.client import create_redis

INCREMENT_WITH_EXPIRY = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@pytest.fixture(params=["stand-in", "real"])
async def redis_client(request):
    url = request.getfixturevalue("redis_url") if request.param == "real" else None
    client = create_redis(url)
    yield client
    await client.aclose()


async def test_commands_behave_alike(redis_client):
    await redis_client.delete("caregraph:test:k", "caregraph:test:n")
    assert await redis_client.ping()
    await redis_client.set("caregraph:test:k", b"v", px=60_000)
    assert await redis_client.get("caregraph:test:k") == b"v"
    assert 0 < await redis_client.pttl("caregraph:test:k") <= 60_000
    assert await redis_client.set("caregraph:test:k", b"w", nx=True) is None
    counts = [
        await redis_client.eval(INCREMENT_WITH_EXPIRY, 1, "caregraph:test:n", 60_000)
        for _ in range(3)
    ]
    assert counts == [1, 2, 3]
    assert await redis_client.pttl("caregraph:test:n") > 0
    await redis_client.delete("caregraph:test:k", "caregraph:test:n")
