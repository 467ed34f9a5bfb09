"""Operations settings (resilience, metrics, backups), read once from the environment.

Kept apart from settings.py so the operational knobs live in one place; Settings holds
one `ops` field of this type.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def _optional(name: str) -> str | None:
    return os.environ.get(name) or None


def parse_duration_s(raw: str) -> int:
    """'90', '90s', '15m', '6h', '1d' -> seconds."""
    raw = raw.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if raw and raw[-1] in units:
        return int(raw[:-1]) * units[raw[-1]]
    return int(raw)


@dataclass(frozen=True)
class OpsSettings:
    # PyMongo's pool, and the bounds in front of it (runtime/mongo_gate.py): the process
    # bound stays below the pool size so a burst can never take every connection.
    mongodb_max_pool_size: int = 100
    mongodb_concurrency: int = 64
    mongodb_concurrency_per_request: int = 16
    # How long a MongoDB operation waits for a slot before the request is shed (503).
    mongodb_queue_wait_ms: int = 1_000
    # No request (transaction retries included) runs longer than this; None: the
    # MongoDB operation timeout (MONGODB_TIMEOUT_MS).
    request_budget_ms: int | None = None
    # Bearer token for /metrics; None: generated into the data folder on first start.
    metrics_token: str | None = None
    # Scheduled backups: every N seconds (None: off), into this folder, keeping N files.
    backup_every_s: int | None = None
    backup_dir: Path | None = None  # None: <data_dir>/backups
    backup_keep: int = 7
    # 32-byte key (hex) the archive key pair is derived from; None: generated into the
    # data folder (mode 0600) on first use.
    backup_key: str | None = None
    # The periodic integrity check (latest backup verifies), seconds.
    integrity_check_every_s: int = 3_600
    # Data-integrity alarms are POSTed here as JSON.
    alarm_webhook_url: str | None = None
    # Login attempts per account a process allows on its own while Redis is down.
    throttle_fallback_per_account: int = 3
    # "json" (default) or "text" log lines.
    log_format: str = "json"
    # OpenTelemetry tracing (needs the `tracing` extra).
    tracing: bool = False

    @classmethod
    def from_env(cls) -> OpsSettings:
        d = cls()
        every = _optional("CAREGRAPH_BACKUP_EVERY")
        backup_dir = _optional("CAREGRAPH_BACKUP_DIR")
        return cls(
            mongodb_max_pool_size=_int("MONGODB_MAX_POOL_SIZE", d.mongodb_max_pool_size),
            mongodb_concurrency=_int("CAREGRAPH_MONGODB_CONCURRENCY", d.mongodb_concurrency),
            mongodb_concurrency_per_request=_int(
                "CAREGRAPH_MONGODB_CONCURRENCY_PER_REQUEST", d.mongodb_concurrency_per_request
            ),
            mongodb_queue_wait_ms=_int("CAREGRAPH_MONGODB_QUEUE_WAIT_MS", d.mongodb_queue_wait_ms),
            request_budget_ms=_int("CAREGRAPH_REQUEST_BUDGET_MS", 0) or None,
            metrics_token=_optional("CAREGRAPH_METRICS_TOKEN"),
            backup_every_s=parse_duration_s(every) if every else None,
            backup_dir=Path(backup_dir) if backup_dir else None,
            backup_keep=_int("CAREGRAPH_BACKUP_KEEP", d.backup_keep),
            backup_key=_optional("CAREGRAPH_BACKUP_KEY"),
            integrity_check_every_s=_int(
                "CAREGRAPH_INTEGRITY_CHECK_EVERY_S", d.integrity_check_every_s
            ),
            alarm_webhook_url=_optional("CAREGRAPH_ALARM_WEBHOOK_URL"),
            throttle_fallback_per_account=_int(
                "CAREGRAPH_THROTTLE_FALLBACK_PER_ACCOUNT", d.throttle_fallback_per_account
            ),
            log_format=os.environ.get("CAREGRAPH_LOG_FORMAT", d.log_format),
            tracing=os.environ.get("CAREGRAPH_TRACING", "").lower() in {"1", "true", "yes", "on"},
        )
