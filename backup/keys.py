"""The backup master key: CAREGRAPH_BACKUP_KEY (64 hex digits), or on embedded defaults
one generated into the data folder (`backup-key`, mode 0600) on first use.

Keep a copy of the key somewhere other than the backups: an archive cannot be read
(or restored) without it, by design.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from settings import Settings

KEY_FILE = "backup-key"


class BackupKeyError(Exception):
    pass


def _parse(text: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise BackupKeyError(f"{where} must be 64 hex digits (a 32-byte key)") from None
    if len(key) != 32:
        raise BackupKeyError(f"{where} must be 64 hex digits (a 32-byte key), not {len(key)} bytes")
    return key


def backup_key(settings: Settings, *, create: bool = True) -> bytes:
    if settings.ops.backup_key:
        return _parse(settings.ops.backup_key, "CAREGRAPH_BACKUP_KEY")
    path = Path(settings.data_dir) / KEY_FILE
    if not path.exists():
        if not create:
            raise BackupKeyError(
                f"no backup key: set CAREGRAPH_BACKUP_KEY or put the key file at {path}"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return _parse(path.read_text(), str(path))
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_hex(32) + "\n")
    return _parse(path.read_text(), str(path))
