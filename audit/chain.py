"""The tamper-evident chain: mac_n = HMAC-SHA256(key, canonical(record_n) || mac_{n-1}).

A record's MAC covers every stored field but the MAC itself, and the previous record's
MAC, so editing, deleting, inserting or reordering any record breaks the chain at that
point. The key lives outside the database (settings or a file in the data folder), so
someone who can write to the database cannot recompute MACs.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from bson import ObjectId

GENESIS_MAC = bytes(32)  # the "previous MAC" of record 1
MAC_FIELD = "mac"
# Fields the store adds that are not part of the record's content.
UNSIGNED_FIELDS = frozenset({"_id", MAC_FIELD})


def _plain(value: Any) -> Any:
    """One spelling per value, whatever the round trip through BSON did to it."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def canonical(record: dict[str, Any]) -> bytes:
    """Sorted-key compact JSON of the signed fields (RFC 8785 in spirit: no floats here)."""
    signed = {k: v for k, v in record.items() if k not in UNSIGNED_FIELDS}
    return orjson.dumps(_plain(signed), option=orjson.OPT_SORT_KEYS)


def mac(key: bytes, record: dict[str, Any], previous: bytes) -> bytes:
    return hmac.new(key, canonical(record) + previous, hashlib.sha256).digest()


def seal(key: bytes, records: list[dict[str, Any]], *, first_seq: int, previous: bytes) -> bytes:
    """Number and MAC `records` in place, continuing a chain; returns the last MAC."""
    for offset, record in enumerate(records):
        record["seq"] = first_seq + offset
        previous = mac(key, record, previous)
        record[MAC_FIELD] = previous
    return previous


def head_mac(key: bytes, seq: int, last_mac: bytes) -> bytes:
    """Authenticates the stored tail anchor, so truncating the log is evident too."""
    return hmac.new(key, b"head:%d:" % seq + last_mac, hashlib.sha256).digest()


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


class ChainVerifier:
    """Feed records in ascending `seq` order; stops at the first broken link."""

    def __init__(self, key: bytes, head: dict[str, Any] | None) -> None:
        self.key, self.head = key, head
        self.expected_seq = 1
        self.previous = GENESIS_MAC
        self.anchor_matched = head is None
        self.verdict: Verdict | None = None

    def feed(self, record: dict[str, Any]) -> bool:
        """False once the chain is broken (the verdict says where)."""
        if self.verdict is not None:
            return False
        seq = record.get("seq")
        checked = self.expected_seq - 1
        if seq != self.expected_seq:
            problem = (
                f"record {self.expected_seq} is missing (next stored is {seq})"
                if isinstance(seq, int) and seq > self.expected_seq
                else f"record out of order: seq {seq} where {self.expected_seq} was expected"
            )
            self.verdict = Verdict(False, checked, self.expected_seq, problem)
            return False
        stored = record.get(MAC_FIELD)
        expected = mac(self.key, record, self.previous)
        if not isinstance(stored, bytes) or not hmac.compare_digest(bytes(stored), expected):
            self.verdict = Verdict(False, checked, seq, f"record {seq} does not match its MAC")
            return False
        self.previous = expected
        self.expected_seq += 1
        if self.head is not None and self.head.get("seq") == seq:
            self.anchor_matched = self.head.get(MAC_FIELD) == expected
        return True

    def finish(self) -> Verdict:
        if self.verdict is not None:
            return self.verdict
        last = self.expected_seq - 1
        head = self.head
        if head is not None:
            seq, last_mac = head.get("seq"), head.get(MAC_FIELD)
            anchored = (
                isinstance(seq, int)
                and isinstance(last_mac, bytes)
                and hmac.compare_digest(
                    bytes(head.get("headMac", b"")), head_mac(self.key, seq, bytes(last_mac))
                )
            )
            if not anchored:
                return Verdict(False, last, last + 1, "the tail anchor was altered")
            assert isinstance(seq, int)
            if seq > last:
                return Verdict(False, last, last + 1, f"records {last + 1}..{seq} were removed")
            if not self.anchor_matched:
                return Verdict(False, last, seq, f"record {seq} differs from the tail anchor")
        return Verdict(True, last)


def verify(key: bytes, records: Iterable[dict[str, Any]], head: dict[str, Any] | None) -> Verdict:
    verifier = ChainVerifier(key, head)
    for record in records:
        if not verifier.feed(record):
            break
    return verifier.finish()


async def verify_async(
    key: bytes, records: AsyncIterable[dict[str, Any]], head: dict[str, Any] | None
) -> Verdict:
    verifier = ChainVerifier(key, head)
    async for record in records:
        if not verifier.feed(record):
            break
    return verifier.finish()
