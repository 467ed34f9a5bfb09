"""Login throttling in Redis: failed attempts per account per minute and per client
address per 15 minutes. Every attempt is counted, so 50 aliased login mutations in one
request are 50 attempts."""

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
_COUNT_FAILURE = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
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

    async def check(self, *, email: str, ip: str) -> None:
        account_key, ip_key = self._keys(email, ip)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.get(account_key).pttl(account_key).get(ip_key).pttl(ip_key)
                account, account_ttl, by_ip, ip_ttl = await pipe.execute()
        except RedisError:
            # Availability over lockout: a Redis outage must not stop every login.
            log.exception("login throttle unavailable; allowing the attempt")
            return
        if account is not None and int(account) >= self.per_account:
            raise RateLimited(max(1, -(-int(account_ttl) // 1000)))
        if by_ip is not None and int(by_ip) >= self.per_ip:
            raise RateLimited(max(1, -(-int(ip_ttl) // 1000)))

    async def record_failure(self, *, email: str, ip: str) -> None:
        account_key, ip_key = self._keys(email, ip)
        try:
            await self.redis.eval(_COUNT_FAILURE, 1, account_key, ACCOUNT_WINDOW_MS)
            await self.redis.eval(_COUNT_FAILURE, 1, ip_key, IP_WINDOW_MS)
        except RedisError:
            log.exception("could not record a failed login")

    async def record_success(self, *, email: str, ip: str) -> None:
        account_key, _ = self._keys(email, ip)
        try:
            await self.redis.delete(account_key)
        except RedisError:
            log.exception("could not reset the login throttle")
