"""Login throttling in Redis: attempts per account per minute (a right password resets
it) and failed attempts per client address per 15 minutes. Every attempt is counted
before its password is checked, so 50 aliased login mutations in one request, or 50
requests at once, are 50 attempts."""

from __future__ import annotations

import logging

import redis.asyncio as redis
from redis.exceptions import RedisError

from errors import CareGraphError

log = logging.getLogger(__name__)
ACCOUNT_WINDOW_MS = 60_000
IP_WINDOW_MS = 15 * 60_000

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


class RateLimited(CareGraphError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed attempts; retry after {retry_after_s} s", retryAfter=retry_after_s
        )


class LoginThrottle:
    def __init__(self, client: redis.Redis, *, per_account: int, per_ip: int) -> None:
        self.redis, self.per_account, self.per_ip = client, per_account, per_ip

    @staticmethod
    def _keys(email: str, ip: str) -> tuple[str, str]:
        return f"login:fail:account:{email.strip().lower()}", f"login:fail:ip:{ip}"

    async def attempt(self, *, email: str, ip: str) -> None:
        """Count this attempt before the password is checked, atomically: requests sent
        at the same moment cannot all slip under the limit before any failure counts.
        Raises RateLimited once the budget is spent."""
        account_key, ip_key = self._keys(email, ip)
        try:
            account = await self.redis.eval(_COUNT_ATTEMPT, 1, account_key, ACCOUNT_WINDOW_MS)
            by_ip = await self.redis.eval(_COUNT_ATTEMPT, 1, ip_key, IP_WINDOW_MS)
            if int(account) > self.per_account:
                raise RateLimited(await self._retry_after(account_key))
            if int(by_ip) > self.per_ip:
                raise RateLimited(await self._retry_after(ip_key))
        except RedisError:
            # Availability over lockout: a Redis outage must not stop every login.
            log.exception("login throttle unavailable; allowing the attempt")

    async def _retry_after(self, key: str) -> int:
        return max(1, -(-int(await self.redis.pttl(key)) // 1000))

    async def succeeded(self, *, email: str, ip: str) -> None:
        """A right password: the account's count starts again, and the attempt does not
        count against the address (many people sign in from one hospital network)."""
        account_key, ip_key = self._keys(email, ip)
        try:
            await self.redis.delete(account_key)
            await self.redis.eval(_GIVE_BACK, 1, ip_key)
        except RedisError:
            log.exception("could not reset the login throttle")


class RegistrationRateLimited(RateLimited):
    def __init__(self, retry_after_s: int) -> None:
        CareGraphError.__init__(
            self,
            f"too many sign-ups from this address; retry after {retry_after_s} s",
            retryAfter=retry_after_s,
        )


class RegistrationThrottle:
    """Sign-ups per client address per window. Every call counts, before any work, so
    one request with 20 aliased `register` mutations is 20 attempts."""

    def __init__(self, client: redis.Redis, *, per_ip: int, window_s: int) -> None:
        self.redis, self.per_ip, self.window_ms = client, per_ip, window_s * 1000

    async def attempt(self, *, ip: str) -> None:
        key = f"register:ip:{ip}"
        try:
            count = await self.redis.eval(_COUNT_ATTEMPT, 1, key, self.window_ms)
            if int(count) > self.per_ip:
                ttl_ms = int(await self.redis.pttl(key))
                raise RegistrationRateLimited(max(1, -(-ttl_ms // 1000)))
        except RedisError:
            # Like login: a Redis outage must not stop patients from signing up.
            log.exception("registration throttle unavailable; allowing the attempt")
