"""What goes into an archive: record types, canonical row serialisation, digests.

MongoDB documents are stored as the exact BSON bytes the server returned (so a restore
writes back byte-identical documents, field order and types included); SQL rows as
canonical JSON (sorted keys, typed values). A member's digest is SHA-256 over its
records, each prefixed with its length, in primary-key order.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

BEGIN, DOCUMENT, END, MANIFEST, AUTHENTICATOR = b"B", b"D", b"E", b"M", b"A"
MONGODB, SQL = "mongodb", "sql"
_LENGTH = struct.Struct(">I")


class MemberDigest:
    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, payload: bytes) -> None:
        self._hash.update(_LENGTH.pack(len(payload)))
        self._hash.update(payload)
        self.count += 1

    @property
    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    def summary(self) -> dict[str, Any]:
        return {"count": self.count, "sha256": self.hexdigest}


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"$datetime": aware.astimezone(UTC).isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, raw),) = value.items()
        if tag == "$datetime":
            return datetime.fromisoformat(raw)
        if tag == "$date":
            return date.fromisoformat(raw)
        if tag == "$decimal":
            return Decimal(raw)
        if tag == "$bytes":
            return base64.b64decode(raw)
    return value


def encode_row(row: dict[str, Any]) -> bytes:
    """Canonical JSON: sorted keys, no spaces, typed values; equal rows, equal bytes."""
    return json.dumps(
        {key: _encode_value(value) for key, value in row.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def decode_row(payload: bytes) -> dict[str, Any]:
    return {key: _decode_value(value) for key, value in json.loads(payload).items()}


def table_order(table: sa.Table) -> list[sa.ColumnElement[Any]]:
    """Primary key order (every column when there is none), so digests are stable."""
    keys = list(table.primary_key.columns) or list(table.columns)
    return [column.asc() for column in keys]
