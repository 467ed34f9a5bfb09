"""Operations views for administrators: data-integrity alarms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry

from resolvers import operations as resolve


@strawberry.type(description="A failed integrity check (a backup that does not verify, ...).")
class IntegrityAlarm:
    id: strawberry.ID
    check: str = strawberry.field(description="Which check failed: backup, scheduled_backup, ...")
    message: str
    raised_at: datetime

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> IntegrityAlarm:
        return cls(
            id=strawberry.ID(str(document["_id"])),
            check=document["check"],
            message=document["message"],
            raised_at=document["raisedAt"],
        )


@strawberry.type
class OperationsQueries:
    integrity_alarms: list[IntegrityAlarm] | None = strawberry.field(
        resolver=resolve.resolve_integrity_alarms,
        description="The latest data-integrity alarms, newest first.",
    )
