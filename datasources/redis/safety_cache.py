"""Finished medication-safety results in Redis, as JSON (datasources/safety.py decides
the keys: patient, clinical-history version, knowledge version, draft). A cache that is
down costs speed, never a wrong or missing answer: reads miss, writes are dropped."""

from __future__ import annotations

import logging

import redis.asyncio as redis

# Named as before the move to datasources/redis/: log filters select it.
log = logging.getLogger("datasources.safety")
CACHE_TTL_S = 24 * 3600


class SafetyCache:
    def __init__(self, client: redis.Redis, *, ttl_s: int = CACHE_TTL_S) -> None:
        self.client, self.ttl_s = client, ttl_s

    async def get_many(self, keys: list[str]) -> dict[str, bytes | str]:
        """The cached values among `keys` (one MGET); the absent ones are left out."""
        # bytes from this client; redis-py's types allow str (decode_responses), and
        # orjson reads either.
        if not keys:
            return {}
        try:
            values = await self.client.mget(keys)
        except (redis.RedisError, OSError) as error:
            log.warning("safety cache read failed: %s", error)
            return {}
        return {k: v for k, v in zip(keys, values, strict=True) if v is not None}

    async def set_many(self, values: dict[str, bytes]) -> None:
        """Store `values` (one pipelined round trip), each for the TTL."""
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for key, value in values.items():
                    pipe.set(key, value, ex=self.ttl_s)
                await pipe.execute()
        except (redis.RedisError, OSError) as error:
            log.warning("safety cache write failed: %s", error)
