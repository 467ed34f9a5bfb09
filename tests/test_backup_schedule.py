"""Scheduled backups while serving, the periodic integrity check, and its alarms."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from auth.roles import Role
from backup.schedule import archives
from backup.verify import verify_archive
from observability import metrics
from runtime.ops_settings import OpsSettings
from tests.conftest import http_client
from tests.support import issue_token, running_app, settings_for_test

KEY = "ab" * 32
ALARMS = "{ integrityAlarms { id check message raisedAt } }"


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[dict]]]:
    """A loopback HTTP endpoint that records the JSON bodies POSTed to it."""
    received: list[dict] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        received.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/alarms", received
    finally:
        server.close()
        await server.wait_closed()


def app_with(mongo_uri: str, tmp_path, **ops: Any):  # OpsSettings' own fields
    settings = settings_for_test(mongo_uri, tmp_path)
    return running_app(
        settings.with_overrides(
            ops=OpsSettings(backup_key=KEY, backup_dir=tmp_path / "backups", **ops)
        )
    )


async def test_scheduled_backups_are_written_verified_and_pruned(mongo_uri, tmp_path) -> None:
    async with app_with(mongo_uri, tmp_path, backup_every_s=1, backup_keep=2) as app:
        services = app.state.services
        await services.db["patients"].insert_one({"givenName": "Sched", "familyName": "Uled"})
        folder = tmp_path / "backups"
        deadline = time.monotonic() + 30
        scheduler = app.state.backup_scheduler
        while scheduler.completed < 3:  # noqa: ASYNC110 - polling, bounded
            assert time.monotonic() < deadline, "no third scheduled backup"
            await asyncio.sleep(0.2)
        await app.state.backup_scheduler.stop()
        kept = archives(folder)
        assert len(kept) == 2  # the oldest were pruned
        assert not list(folder.glob("*.partial"))
        manifest = verify_archive(kept[0], bytes.fromhex(KEY))
        assert manifest["mongodb"]["collections"]["patients"]["count"] == 1
        assert metrics.BACKUP_LAST_SUCCESS._value.get() > 0


async def test_a_backup_that_no_longer_verifies_raises_every_alarm(
    mongo_uri, tmp_path, caplog
) -> None:
    async with webhook_receiver() as (url, received):
        async with app_with(mongo_uri, tmp_path, alarm_webhook_url=url) as app:
            services = app.state.services
            scheduler = app.state.backup_scheduler
            archive = await scheduler.backup_now()
            assert archive is not None
            assert await scheduler.check_now() == []
            data = bytearray(archive.read_bytes())
            data[len(data) // 2] ^= 0xFF  # the file rots on disk
            archive.write_bytes(bytes(data))
            before = metrics.INTEGRITY_ALARMS.labels("backup")._value.get()
            with caplog.at_level(logging.CRITICAL, logger="caregraph.integrity"):
                problems = await scheduler.check_now()
            assert len(problems) == 1 and "failed authentication" in problems[0]
            # Logged at CRITICAL, counted, recorded for admins, and sent to the webhook.
            assert any(r.levelno == logging.CRITICAL for r in caplog.records)
            assert metrics.INTEGRITY_ALARMS.labels("backup")._value.get() == before + 1
            assert received and received[0]["check"] == "backup"
            assert "failed authentication" in received[0]["message"]
            admin = await issue_token(services, Role.ADMIN)
            async with http_client(app, admin) as client:
                alarms = (await client.data(ALARMS))["integrityAlarms"]
            assert [a["check"] for a in alarms] == ["backup"]
            doctor = await issue_token(services, Role.DOCTOR)
            async with http_client(app, doctor) as client:
                error = await client.error(ALARMS)
            assert error["extensions"]["code"] == "FORBIDDEN"
