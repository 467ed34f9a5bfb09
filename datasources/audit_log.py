"""The audit log in MongoDB: append-only, numbered without gaps, HMAC-chained.

No code path updates or deletes a record. A writer reads the end of the chain (the
authenticated tail anchor, a small document; the last record itself after a conflict),
seals its records after it and inserts them; the unique index on `seq` makes a
concurrent writer (in this process or another) that read the same end fail with a
duplicate key, and it retries from the real last record. So seqs
have no gaps and every record chains from the one really stored before it.
A process-wide lock keeps writers of one process from racing each other at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, PyMongoError

from audit.chain import GENESIS_MAC, Verdict, head_mac, seal, verify_async
from datasources.documents import Document

LOG, HEAD = "audit_log", "audit_head"
HEAD_ID = "tail"
MAX_ATTEMPTS = 50

INDEXES = [
    IndexModel([("seq", ASCENDING)], name="seq_unique", unique=True),
    IndexModel([("patientIds", ASCENDING), ("seq", DESCENDING)], name="patient_seq"),
    IndexModel([("actor.userId", ASCENDING), ("seq", DESCENDING)], name="actor_seq"),
    # No index on recordedAt: each one costs every request's write, and the time filters
    # (export, auditEvents(from, before)) are rare, administrative reads.
]


class AuditUnavailable(Exception):
    """The audit record could not be written: the PHI must not be delivered."""


def _conflict_in_transaction() -> OperationFailure:
    # Inside a transaction a duplicate seq aborts the transaction: label it transient so
    # with_transaction retries the whole unit (the change and its audit record).
    error = OperationFailure("audit sequence taken by a concurrent writer", code=112)
    error._add_error_label("TransientTransactionError")
    return error


class AuditLog:
    def __init__(self, db: AsyncDatabase[Document], key: bytes) -> None:
        self.collection = db[LOG]
        self.head = db[HEAD]
        self.key = key
        self._lock = asyncio.Lock()

    async def ensure_indexes(self) -> None:
        await self.collection.create_indexes(INDEXES)

    async def append(
        self, records: Sequence[dict[str, Any]], *, session: AsyncClientSession | None = None
    ) -> None:
        """Chain and store `records` (in `session`'s transaction when given)."""
        if not records:
            return
        if session is not None:
            await self._append_once(list(records), session)
            return
        try:
            async with self._lock:
                await self._append_retrying(list(records))
        except PyMongoError as error:
            raise AuditUnavailable(str(error)) from error

    async def _append_retrying(self, remaining: list[dict[str, Any]]) -> None:
        from_log = False  # first trust the tail anchor: one small read
        for _ in range(MAX_ATTEMPTS):
            try:
                await self._append_once(remaining, None, from_log=from_log)
                return
            except BulkWriteError as error:
                codes = {e.get("code") for e in error.details.get("writeErrors", [])}
                if codes - {11000}:
                    raise
                # Another writer took our first free seq (or the anchor lags behind a
                # writer that stopped half-way): what we stored stays; read the real end.
                remaining = remaining[error.details.get("nInserted", 0) :]
                from_log = True
        raise AuditUnavailable("the audit log stayed contended")

    async def _last(
        self, session: AsyncClientSession | None, *, from_log: bool
    ) -> tuple[int, bytes]:
        """The end of the chain: the tail anchor, or (after a conflict) the last record."""
        source = self.collection if from_log else self.head
        query = {} if from_log else {"_id": HEAD_ID}
        last = await source.find_one(
            query, sort=[("seq", DESCENDING)], projection={"seq": 1, "mac": 1}, session=session
        )
        if last is None and not from_log:
            return await self._last(session, from_log=True)
        return (last["seq"], bytes(last["mac"])) if last else (0, GENESIS_MAC)

    async def _append_once(
        self,
        records: list[dict[str, Any]],
        session: AsyncClientSession | None,
        *,
        from_log: bool = True,
    ) -> None:
        seq, previous = await self._last(session, from_log=from_log)
        batch = [dict(record) for record in records]
        last_mac = seal(self.key, batch, first_seq=seq + 1, previous=previous)
        try:
            await self.collection.insert_many(batch, ordered=True, session=session)
        except BulkWriteError:
            if session is not None:
                raise _conflict_in_transaction() from None
            raise
        await self._advance_head(seq + len(batch), last_mac, session)

    async def _advance_head(
        self, seq: int, last_mac: bytes, session: AsyncClientSession | None
    ) -> None:
        """Move the authenticated tail anchor forward (never back): it shows truncation."""
        try:
            await self.head.update_one(
                {"_id": HEAD_ID, "seq": {"$lt": seq}},
                {
                    "$set": {
                        "seq": seq,
                        "mac": last_mac,
                        "headMac": head_mac(self.key, seq, last_mac),
                    }
                },
                upsert=True,
                session=session,
            )
        except DuplicateKeyError:
            pass  # a later writer moved it further already

    async def records(self, *, batch_size: int = 1000) -> AsyncIterator[dict[str, Any]]:
        cursor = self.collection.find({}).sort("seq", ASCENDING).batch_size(batch_size)
        async for record in cursor:
            yield record

    async def verify(self) -> Verdict:
        head = await self.head.find_one({"_id": HEAD_ID})
        return await verify_async(self.key, self.records(), head)

    async def page(
        self, *, filter: dict[str, Any], first: int, before_seq: int | None
    ) -> list[dict[str, Any]]:
        """Newest first; `first + 1` rows so the caller knows whether more exist."""
        query = dict(filter)
        if before_seq is not None:
            query["seq"] = {"$lt": before_seq}
        cursor = self.collection.find(query).sort("seq", DESCENDING).limit(first + 1)
        return await cursor.to_list()

    async def between(
        self, *, start: datetime | None, end: datetime | None
    ) -> AsyncIterator[dict[str, Any]]:
        query: dict[str, Any] = {}
        if start or end:
            query["recordedAt"] = {
                **({"$gte": start} if start else {}),
                **({"$lt": end} if end else {}),
            }
        async for record in self.collection.find(query).sort("seq", ASCENDING).batch_size(1000):
            yield record
