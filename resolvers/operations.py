from __future__ import annotations

from errors import BadUserInput
from resolvers.common import Info
from schema import operations as types


async def resolve_integrity_alarms(info: Info, first: int = 50) -> list[types.IntegrityAlarm]:
    if not 1 <= first <= 500:
        raise BadUserInput("first must be between 1 and 500", field="first")
    store = info.context.integrity_alarms
    assert store is not None, "set by the app for every request"
    return [types.IntegrityAlarm.from_document(d) for d in await store.latest(limit=first)]
