"""The login and sign-up throttles' counters, in Redis (the limits: auth/throttle.py).

Shared by every server process. Each count is one Lua script, so incrementing and
setting the window's expiry cannot be split by a crash or a concurrent request.
"""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

from auth.fallback_budget import FallbackBudget
from auth.throttle import (
    ACCOUNT_WINDOW_MS,
    IP_WINDOW_MS,
    RateLimited,
    RegistrationRateLimited,
    login_keys,
    registration_key,
    retry_after_s,
)

log = logging.getLogger(__name__)

# INCR and set the expiry on first use, atomically: a crash between the two commands
# must not leave a counter that never expires.
_COUNT_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""

# Give back one attempt, never below zero and never creating a key (an expired window
# must not come back as a counter without expiry).
_GIVE_BACK = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""

# Used when no process-wide fallback is passed in (tests, scripts).
_DEFAULT_FALLBACK = FallbackBudget(limit=3, window_s=ACCOUNT_WINDOW_MS / 1000)


async def _count(client: redis.Redis, key: str, window_ms: int) -> int:
    return int(await client.eval(_COUNT_ATTEMPT, 1, key, window_ms))


class LoginThrottle:
    def __init__(
        self,
        client: redis.Redis,
        *,
        per_account: int,
        per_ip: int,
        fallback: FallbackBudget | None = None,
    ) -> None:
        self.redis, self.per_account, self.per_ip = client, per_account, per_ip
        # While Redis is down: a small per-process budget per account (fail closed).
        self.fallback = fallback or _DEFAULT_FALLBACK

    async def attempt(self, *, email: str, ip: str) -> None:
        """Count this attempt before the password is checked, atomically: requests sent
        at the same moment cannot all slip under the limit before any failure counts.
        Raises RateLimited once the budget is spent."""
        account_key, ip_key = login_keys(email, ip)
        try:
            account = await _count(self.redis, account_key, ACCOUNT_WINDOW_MS)
            by_ip = await _count(self.redis, ip_key, IP_WINDOW_MS)
            if account > self.per_account:
                raise RateLimited(await self._retry_after(account_key))
            if by_ip > self.per_ip:
                raise RateLimited(await self._retry_after(ip_key))
        except RedisError:
            # Neither open (free guessing during an outage) nor closed for everyone:
            # the attacked account runs out of a small in-process budget.
            log.warning("login throttle: Redis unavailable; using the in-process budget")
            retry_after = self.fallback.spend(account_key)
            if retry_after is not None:
                raise RateLimited(retry_after) from None

    async def _retry_after(self, key: str) -> int:
        return retry_after_s(int(await self.redis.pttl(key)))

    async def succeeded(self, *, email: str, ip: str) -> None:
        """A right password: the account's count starts again, and the attempt does not
        count against the address (many people sign in from one hospital network)."""
        account_key, ip_key = login_keys(email, ip)
        try:
            await self.redis.delete(account_key)
            await self.redis.eval(_GIVE_BACK, 1, ip_key)
        except RedisError:
            self.fallback.forget(account_key)
            log.exception("could not reset the login throttle")


class RegistrationThrottle:
    """Sign-ups per client address per window. Every call counts, before any work, so
    one request with 20 aliased `register` mutations is 20 attempts."""

    def __init__(self, client: redis.Redis, *, per_ip: int, window_s: int) -> None:
        self.redis, self.per_ip, self.window_ms = client, per_ip, window_s * 1000

    async def attempt(self, *, ip: str) -> None:
        key = registration_key(ip)
        try:
            if await _count(self.redis, key, self.window_ms) > self.per_ip:
                raise RegistrationRateLimited(retry_after_s(int(await self.redis.pttl(key))))
        except RedisError:
            # Like login: a Redis outage must not stop patients from signing up.
            log.exception("registration throttle unavailable; allowing the attempt")
