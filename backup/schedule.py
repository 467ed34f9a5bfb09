"""Backups while serving, and the periodic integrity check.

- Every CAREGRAPH_BACKUP_EVERY (e.g. `6h`), the server writes an archive into the
  backup folder (atomically: a partial file never has the final name), verifies it,
  and keeps the newest CAREGRAPH_BACKUP_KEEP archives.
- Every CAREGRAPH_INTEGRITY_CHECK_EVERY_S, the newest archive is verified again (a
  backup that rots on disk is found before it is needed), plus any extra checks
  registered (the audit chain's verification, once it exists).
A failure of either raises a data-integrity alarm (backup/alarms.py).

With several workers (or instances sharing a backup folder), one runs the schedule:
whichever holds the folder's lock file.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from backup.alarms import IntegrityAlarms
from backup.archive import ArchiveInvalid
from backup.cli import SUFFIX, backup_dir
from backup.create import create_backup
from backup.keys import backup_key
from backup.stores import backup_client, services_uri
from backup.verify import verify_archive
from observability import metrics

if TYPE_CHECKING:
    from runtime.services import Services

log = logging.getLogger("caregraph.backup")
IntegrityCheck = Callable[[], Awaitable[str | None]]  # None: fine; else what is wrong


def archives(folder: Path) -> list[Path]:
    """Finished archives, newest first."""
    return sorted(folder.glob(f"caregraph-*{SUFFIX}"), reverse=True)


class BackupScheduler:
    def __init__(self, services: Services, alarms: IntegrityAlarms) -> None:
        self.services, self.alarms = services, alarms
        self.settings = services.settings
        self.folder = backup_dir(self.settings)
        self.extra_checks: list[tuple[str, IntegrityCheck]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.completed = 0  # backups written, verified and pruned
        self._lock: int | None = None

    def _elected(self) -> bool:
        """One process per backup folder runs the schedule (workers share the folder):
        whoever holds the folder's lock, for as long as it lives."""
        self.folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.folder / ".scheduler.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            return False
        self._lock = descriptor
        return True

    def start(self) -> None:
        if not self._elected():
            return
        ops = self.settings.ops
        loop = asyncio.get_running_loop()
        if ops.backup_every_s:
            self._tasks.append(loop.create_task(self._every(ops.backup_every_s, self.backup_now)))
        self._tasks.append(
            loop.create_task(self._every(ops.integrity_check_every_s, self.check_now, first=0))
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        if self._lock is not None:
            os.close(self._lock)  # releases the lock
            self._lock = None

    async def _every(
        self, interval_s: float, job: Callable[[], Awaitable[object]], first: float | None = None
    ) -> None:
        await asyncio.sleep(interval_s if first is None else first)
        while True:
            await job()
            await asyncio.sleep(interval_s)

    async def backup_now(self) -> Path | None:
        """One scheduled backup: write, verify, prune. Alarms on failure."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        out = self.folder / f"caregraph-{stamp}{SUFFIX}"
        partial = out.with_name(out.name + ".partial")
        try:
            key = backup_key(self.settings)
            self.folder.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            client = backup_client(services_uri(self.services))
            try:
                with os.fdopen(descriptor, "wb") as file:
                    db = client[self.settings.mongodb_database]
                    await create_backup(db, self.services.engine, file, key)
                    file.flush()
                    os.fsync(file.fileno())
            finally:
                await client.close()
            partial.replace(out)
            await asyncio.to_thread(verify_archive, out, key)
        except Exception as error:  # noqa: BLE001 - any failure is an alarm
            partial.unlink(missing_ok=True)
            await self.alarms.raise_alarm("scheduled_backup", f"backup failed: {error}")
            return None
        metrics.BACKUP_LAST_SUCCESS.set(time.time())
        log.info("scheduled backup written and verified: %s", out.name)
        for old in archives(self.folder)[self.settings.ops.backup_keep :]:
            old.unlink(missing_ok=True)
        self.completed += 1
        return out

    async def check_now(self) -> list[str]:
        """The periodic integrity check; returns the problems found (alarmed)."""
        problems: list[tuple[str, str]] = []
        newest = archives(self.folder)
        if newest:
            try:
                manifest = await asyncio.to_thread(
                    verify_archive, newest[0], backup_key(self.settings)
                )
            except (ArchiveInvalid, OSError, ValueError) as error:
                problems.append(("backup", f"{newest[0].name} does not verify: {error}"))
            else:
                made = datetime.fromisoformat(manifest["createdAt"]).timestamp()
                if made > metrics.BACKUP_LAST_SUCCESS._value.get():  # noqa: SLF001
                    metrics.BACKUP_LAST_SUCCESS.set(made)
        for name, check in self.extra_checks:
            try:
                problem = await check()
            except Exception as error:  # noqa: BLE001
                problem = f"the check itself failed: {type(error).__name__}"
            if problem:
                problems.append((name, problem))
        for name, problem in problems:
            await self.alarms.raise_alarm(name, problem)
        return [problem for _, problem in problems]
