"""Login and sign-up throttling: the limits, the counter keys and the refusal.

Attempts per account per minute (a right password resets it) and failed attempts per
client address per 15 minutes. Every attempt is counted before its password is checked,
so 50 aliased login mutations in one request, or 50 requests at once, are 50 attempts.
The counters live in Redis (the Redis-backed stores own them); while Redis is down, a small
in-process budget per account takes over (auth/fallback_budget.py).
"""

from __future__ import annotations

from errors import CareGraphError

ACCOUNT_WINDOW_MS = 60_000
IP_WINDOW_MS = 15 * 60_000


class RateLimited(CareGraphError):
    code = "RATE_LIMITED"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            f"too many failed attempts; retry after {retry_after_s} s", retryAfter=retry_after_s
        )


class RegistrationRateLimited(RateLimited):
    def __init__(self, retry_after_s: int) -> None:
        CareGraphError.__init__(
            self,
            f"too many sign-ups from this address; retry after {retry_after_s} s",
            retryAfter=retry_after_s,
        )


def login_keys(email: str, ip: str) -> tuple[str, str]:
    """The counters of a login attempt: its account (however the address is spelled)
    and its client address."""
    return f"login:fail:account:{email.strip().lower()}", f"login:fail:ip:{ip}"


def registration_key(ip: str) -> str:
    return f"register:ip:{ip}"


def retry_after_s(window_left_ms: int) -> int:
    """Whole seconds until a window with `window_left_ms` left ends (at least 1)."""
    return max(1, -(-window_left_ms // 1000))
