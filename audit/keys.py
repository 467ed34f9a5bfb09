"""The audit key: configured, or generated once into the data folder (mode 0600).

It is never stored in the database: whoever can change the database must not be able
to recompute the chain's MACs.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_secret_file(path: Path, *, size: int) -> bytes:
    """`size` random bytes kept in `path`, created readable by this user only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_bytes()
        with os.fdopen(descriptor, "wb") as key_file:
            key_file.write(secrets.token_bytes(size))
    return path.read_bytes()


def load_audit_key(configured: str | None, data_dir: Path) -> bytes:
    if configured:
        return configured.encode()
    return load_secret_file(Path(data_dir) / "audit-key", size=32)
