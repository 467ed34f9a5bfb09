"""Raising a data-integrity alarm: a CRITICAL log line, a metric, a record ADMINs list
with the `integrityAlarms` query, and a JSON POST to the configured webhook.

Each channel is independent: a webhook that is down, or a database that is (the alarm
may be about it), does not stop the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from datasources.integrity_alarms import IntegrityAlarmStore
from observability import metrics

log = logging.getLogger("caregraph.integrity")
WEBHOOK_TIMEOUT_S = 5.0


class IntegrityAlarms:
    def __init__(self, store: IntegrityAlarmStore, *, webhook_url: str | None) -> None:
        self.store, self.webhook_url = store, webhook_url

    async def raise_alarm(self, check: str, message: str) -> None:
        log.critical("DATA INTEGRITY ALARM (%s): %s", check, message)
        metrics.INTEGRITY_ALARMS.labels(check).inc()
        try:
            await self.store.add(check=check, message=message)
        except Exception:  # noqa: BLE001 - the other channels still go out
            log.exception("could not record the integrity alarm")
        if self.webhook_url:
            await self._post(check, message)

    async def _post(self, check: str, message: str) -> None:
        if not (self.webhook_url or "").startswith(("http://", "https://")):
            log.error("CAREGRAPH_ALARM_WEBHOOK_URL must be an http(s) URL; alarm not sent")
            return
        payload: dict[str, Any] = {
            "alarm": "caregraph.data_integrity",
            "check": check,
            "message": message,
            "raisedAt": datetime.now(UTC).isoformat(),
        }
        request = urllib.request.Request(
            self.webhook_url or "",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )

        def send() -> None:
            # The standard library, in a thread: one POST now and then needs no client.
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S):  # noqa: S310
                pass

        try:
            await asyncio.to_thread(send)
        except (urllib.error.URLError, OSError, ValueError):
            log.exception("the integrity alarm webhook failed")
