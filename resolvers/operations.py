from __future__ import annotations

from errors import BadUserInput
from resolvers.common import Info, provided
from schema import operations as types


async def resolve_integrity_alarms(info: Info, first: int = 50) -> list[types.IntegrityAlarm]:
    if not 1 <= first <= 500:
        raise BadUserInput("first must be between 1 and 500", field="first")
    alarms = provided(info.context.integrity_alarms, "integrity alarms")
    return [types.IntegrityAlarm.from_document(d) for d in await alarms.latest(limit=first)]
