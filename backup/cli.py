"""`caregraph backup create | verify | restore`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backup.archive import ArchiveInvalid
from backup.keys import BackupKeyError, backup_key
from backup.restore import RestoreRefused
from settings import Settings

SUFFIX = ".cgbk"


def backup_dir(settings: Settings) -> Path:
    return settings.ops.backup_dir or Path(settings.data_dir) / "backups"


def default_archive_path(settings: Settings) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return backup_dir(settings) / f"caregraph-{stamp}{SUFFIX}"


def add_backup_commands(commands: Any) -> None:
    backup = commands.add_parser("backup", help="create, verify or restore a backup archive")
    actions = backup.add_subparsers(dest="backup_command", required=True)
    create = actions.add_parser("create", help="write an encrypted, authenticated archive")
    create.add_argument("--out", type=Path, help="archive path (default: the backup folder)")
    create.add_argument("--no-progress", action="store_true")
    verify = actions.add_parser("verify", help="check an archive completely (no database)")
    verify.add_argument("file", type=Path)
    restore = actions.add_parser("restore", help="verify, then restore into empty databases")
    restore.add_argument("file", type=Path)
    restore.add_argument(
        "--replace", action="store_true", help="empty non-empty target databases first"
    )
    restore.add_argument(
        "--confirm",
        metavar="DATABASE",
        help="with --replace: the target MongoDB database name, instead of the prompt",
    )


def _summary(manifest: dict[str, Any]) -> str:
    documents = sum(m["count"] for m in manifest["mongodb"]["collections"].values())
    rows = sum(t["count"] for t in manifest["sql"]["tables"].values())
    return (
        f"{len(manifest['mongodb']['collections'])} collections ({documents} documents), "
        f"{len(manifest['sql']['tables'])} tables ({rows} rows); CareGraph "
        f"{manifest['caregraphVersion']}, SQL revision {manifest['sqlMigrationRevision']}, "
        f"made {manifest['createdAt']}"
    )


async def write_archive(settings: Settings, out: Path, *, progress: bool) -> dict[str, Any]:
    """Create an archive at `out` atomically (a partial file never has the final name)."""
    from backup.create import create_backup
    from backup.stores import backup_stores

    key = backup_key(settings)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        async with backup_stores(settings) as (db, engine):
            descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                manifest = await create_backup(db, engine, file, key, progress=progress)
                file.flush()
                os.fsync(file.fileno())
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


async def _restore(args: argparse.Namespace, settings: Settings) -> None:
    from backup.restore import restore_backup
    from backup.stores import backup_stores

    key = backup_key(settings, create=False)
    if args.replace:
        confirmation = args.confirm
        if confirmation is None:
            confirmation = input(  # noqa: ASYNC250 - an operator's prompt, nothing else runs
                f"This deletes everything in MongoDB database {settings.mongodb_database!r} "
                "and the billing database. Type the database name to go on: "
            )
        if confirmation.strip() != settings.mongodb_database:
            raise RestoreRefused("not confirmed: nothing was changed")
    async with backup_stores(settings) as (db, engine):
        manifest = await restore_backup(args.file, key, db, engine, replace=args.replace)
    print(f"restored and checked: {_summary(manifest)}")


def run_backup(args: argparse.Namespace, settings: Settings) -> int:
    try:
        if args.backup_command == "create":
            out = args.out or default_archive_path(settings)
            manifest = asyncio.run(
                write_archive(settings, out, progress=not args.no_progress and sys.stderr.isatty())
            )
            print(f"backup written to {out}: {_summary(manifest)}")
        elif args.backup_command == "verify":
            from backup.verify import verify_archive

            manifest = verify_archive(args.file, backup_key(settings, create=False))
            print(f"OK: {args.file} verifies: {_summary(manifest)}")
        elif args.backup_command == "restore":
            asyncio.run(_restore(args, settings))
    except (ArchiveInvalid, RestoreRefused, BackupKeyError) as error:
        print(f"REFUSED: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"REFUSED: no such file: {error.filename}", file=sys.stderr)
        return 2
    return 0
