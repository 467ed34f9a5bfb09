"""Automatic persisted queries: query texts by SHA-256, in Redis.

Redis, not process memory, so a query registered through one server process is found
by every other (and survives restarts of any of them). Entries expire after a TTL, and
only documents that parsed and validated are ever stored.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger("caregraph.apq")
KEY_PREFIX = "caregraph:apq:"


class ApqStore:
    def __init__(self, client: redis.Redis, *, ttl_s: int) -> None:
        self.client, self.ttl_s = client, ttl_s

    async def get(self, sha256: str) -> str | None:
        try:
            value = await self.client.get(KEY_PREFIX + sha256)
        except RedisError:
            # The client falls back to sending the full query: slower, never wrong.
            log.warning("APQ lookup failed; answering PersistedQueryNotFound", exc_info=True)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, sha256: str, query: str) -> None:
        try:
            await self.client.set(KEY_PREFIX + sha256, query, ex=self.ttl_s)
        except RedisError:
            log.warning("APQ store failed; the query still runs", exc_info=True)
