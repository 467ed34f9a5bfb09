"""The login throttle's in-process budget, used only while Redis is unreachable.

Failing open would let an attacker guess passwords at full speed during a Redis outage;
failing closed for everyone would stop every login. So each process keeps a small
budget of attempts per key (account or address) per window, in memory: an attacked
account is locked after a few guesses per process, everyone else still signs in.
"""

from __future__ import annotations

import threading
import time

from observability import metrics


class FallbackBudget:
    def __init__(self, *, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit, self.window_s, self.max_keys = limit, window_s, max_keys
        self._windows: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def spend(self, key: str) -> int | None:
        """Count one attempt; None when allowed, else seconds until the window ends."""
        now = time.monotonic()
        metrics.FALLBACK_SPENT.inc()
        with self._lock:
            started, count = self._windows.get(key, (now, 0))
            if now - started >= self.window_s:
                started, count = now, 0
            count += 1
            if len(self._windows) >= self.max_keys and key not in self._windows:
                self._forget_expired(now)
            self._windows[key] = (started, count)
        if count > self.limit:
            return max(1, int(started + self.window_s - now + 0.999))
        return None

    def forget(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def _forget_expired(self, now: float) -> None:
        expired = [k for k, (t, _) in self._windows.items() if now - t >= self.window_s]
        for key in expired:
            del self._windows[key]
        if len(self._windows) >= self.max_keys:
            # Still full (a flood of distinct keys): start over rather than grow forever.
            self._windows.clear()
