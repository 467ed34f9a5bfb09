"""The Redis client: a real server when REDIS_URL is set, else an in-process stand-in.

The stand-in is fakeredis, which implements the redis-py asyncio interface (including
Lua scripts and expiry), so code written against it runs unchanged on real Redis.
"""

from __future__ import annotations

import redis.asyncio as redis


def create_redis(url: str | None) -> redis.Redis:
    if url:
        return redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
    from fakeredis import FakeAsyncRedis

    return FakeAsyncRedis()
