"""The bulk-export guard: per account, the distinct patients whose PHI was read in a
sliding window (a Redis sorted set: member patient id, score last read time). A request
that would take an account over its role's budget gets none of the PHI it read.

Shared by every server process through Redis; one Lua script makes the check and the
update atomic, so concurrent requests cannot both slip under the budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import redis.asyncio as redis

log = logging.getLogger("caregraph.phi_guard")
ALARMS_KEY = "caregraph:phi-guard:alarms"

# KEYS[1] the account's set; ARGV: now, window start, budget, ttl, patient ids...
_ADMIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local members = {}
for i = 5, #ARGV do members[#members + 1] = ARGV[i] end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(members))
local fresh = 0
for i = 1, #scores do if not scores[i] then fresh = fresh + 1 end end
local total = redis.call('ZCARD', KEYS[1]) + fresh
if total > tonumber(ARGV[3]) then return -total end
local pairs = {}
for i = 1, #members do pairs[#pairs + 1] = ARGV[1]; pairs[#pairs + 1] = members[i] end
redis.call('ZADD', KEYS[1], unpack(pairs))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return total
"""


class BulkExportGuard:
    def __init__(self, client: redis.Redis, *, budgets: Mapping[str, int], window_s: int) -> None:
        self.client, self.budgets, self.window_s = client, budgets, window_s
        self._admit = client.register_script(_ADMIT)

    def budget(self, role: str | None) -> int | None:
        return self.budgets.get(role) if role else None

    async def admit(self, *, user_id: str, role: str | None, patients: set[str]) -> bool:
        """Count `patients` against the account's window; False (and an alarm) when the
        account would exceed its budget. Roles without a budget are not limited."""
        budget = self.budget(role)
        if budget is None or not patients:
            return True
        now = time.time()
        total = await self._admit(
            keys=[f"caregraph:phi-reads:{user_id}"],
            args=[now, now - self.window_s, budget, self.window_s + 60, *sorted(patients)],
        )
        if int(total) >= 0:
            return True
        alarms = await self.client.incr(ALARMS_KEY)
        log.warning(
            "bulk-export guard: account %s (%s) would read PHI of %d distinct patients in "
            "%d s (budget %d); refused (alarm #%d)",
            user_id,
            role,
            -int(total),
            self.window_s,
            budget,
            alarms,
        )
        return False

    async def alarms(self) -> int:
        return int(await self.client.get(ALARMS_KEY) or 0)
