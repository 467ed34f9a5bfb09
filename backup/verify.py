"""`caregraph backup verify FILE`: check an archive completely, touching no database.

Every chunk is authenticated (AES-256-GCM: no edit, reorder, truncation or foreign
chunk passes), every member's count and SHA-256 are recomputed and compared with its
end record and with the manifest, the manifest's HMAC-SHA256 authenticator is checked,
and the manifest must list exactly the members present.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from backup.archive import ArchiveInvalid, archive_mac_key, mac, read_records
from backup.members import (
    AUTHENTICATOR,
    BEGIN,
    DOCUMENT,
    END,
    MANIFEST,
    MONGODB,
    SQL,
    MemberDigest,
)


@dataclass
class Begin:
    kind: str
    name: str
    details: dict[str, Any]


Event = tuple[str, Any]  # ("begin", Begin) | ("document", bytes) | ("end", summary)


def events(source: IO[bytes], key: bytes) -> Iterator[Event]:
    """The archive's members as events, each checked as it ends; raises ArchiveInvalid.
    The final event is ("manifest", manifest) once the authenticator has verified."""
    mac_key = archive_mac_key(source, key)
    seen: dict[str, dict[str, dict[str, Any]]] = {SQL: {}, MONGODB: {}}
    current: Begin | None = None
    digest = MemberDigest()
    manifest_bytes: bytes | None = None
    authenticated = False
    for kind, payload in read_records(source, key):
        if authenticated:
            raise ArchiveInvalid("records follow the authenticator")
        if kind == BEGIN:
            if current is not None or manifest_bytes is not None:
                raise ArchiveInvalid("a member starts inside another member")
            info = json.loads(payload)
            current = Begin(info.pop("kind"), info.pop("name"), info)
            if current.kind not in seen or current.name in seen[current.kind]:
                raise ArchiveInvalid(f"unexpected or repeated member {current.kind}:{current.name}")
            digest = MemberDigest()
            yield "begin", current
        elif kind == DOCUMENT:
            if current is None:
                raise ArchiveInvalid("a document outside any member")
            digest.add(payload)
            yield "document", payload
        elif kind == END:
            if current is None:
                raise ArchiveInvalid("a member ends that never began")
            recorded = json.loads(payload)
            where = f"{current.kind} {current.name!r}"
            if recorded != digest.summary():
                raise ArchiveInvalid(
                    f"{where}: count or SHA-256 does not match its contents "
                    f"(recorded {recorded}, found {digest.summary()})"
                )
            seen[current.kind][current.name] = digest.summary()
            yield "end", digest.summary()
            current = None
        elif kind == MANIFEST:
            if current is not None:
                raise ArchiveInvalid("the manifest comes inside a member")
            manifest_bytes = payload
        elif kind == AUTHENTICATOR:
            if manifest_bytes is None:
                raise ArchiveInvalid("an authenticator without a manifest")
            if not hmac.compare_digest(payload.decode(), mac(mac_key, manifest_bytes)):
                raise ArchiveInvalid("the manifest's HMAC-SHA256 authenticator does not match")
            authenticated = True
        else:
            raise ArchiveInvalid(f"unknown record type {kind!r}")
    if manifest_bytes is None or not authenticated:
        raise ArchiveInvalid("the archive has no authenticated manifest (truncated?)")
    manifest = json.loads(manifest_bytes)
    for store, listed in (
        (SQL, manifest["sql"]["tables"]),
        (MONGODB, manifest["mongodb"]["collections"]),
    ):
        if listed != seen[store]:
            missing = sorted(set(listed) ^ set(seen[store])) or sorted(
                n for n in listed if listed[n] != seen[store].get(n)
            )
            raise ArchiveInvalid(
                f"the manifest disagrees with the archive's {store} members: {missing}"
            )
    yield "manifest", manifest


def verify_archive(path: Path, key: bytes) -> dict[str, Any]:
    """The archive's manifest, if and only if the whole archive verifies."""
    with open(path, "rb") as source:
        for event, value in events(source, key):
            if event == "manifest":
                return value
    raise ArchiveInvalid("the archive has no manifest")  # pragma: no cover - events raises
