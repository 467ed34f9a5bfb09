"""Automatic logoff (HIPAA 45 CFR §164.312(a)(2)(iii)): a session ends after an idle
time and after an absolute lifetime, whatever its owner does.

Access tokens are short (15 minutes); a session continues only by presenting its
refresh token. A refresh token unused for `session_idle_timeout_s` since it was issued
is refused, and so is any refresh once the session (the login that started the token
family) is older than `session_max_lifetime_s`. Either way the whole family ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from settings import Settings

MESSAGES = {
    "idle": "the session ended after inactivity: sign in again",
    "expired": "the session reached its maximum length: sign in again",
}


def refresh_conditions(settings: Settings, now: datetime) -> dict[str, datetime]:
    """The earliest issue time and session start a refresh token may have at `now`."""
    return {
        "issued_after": now - timedelta(seconds=settings.session_idle_timeout_s),
        "session_started_after": now - timedelta(seconds=settings.session_max_lifetime_s),
    }
