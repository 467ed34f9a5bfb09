"""The pharmacist's review of prescriptions: the queue and the verification lifecycle.

PENDING_REVIEW -> VERIFIED | REJECTED, VERIFIED -> DISPENSED. Each move is one
conditional update on the status it leaves, so two pharmacists cannot both move the same
prescription, and who moved it and when are stored with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from datasources.documents import Document, utcnow
from datasources.filters import merge
from datasources.pagination import Page, PageRequest, build_page, decode_cursor, sort_key
from datasources.prescriptions import PrescriptionStore

PENDING_REVIEW, VERIFIED, REJECTED, DISPENSED = (
    "PENDING_REVIEW",
    "VERIFIED",
    "REJECTED",
    "DISPENSED",
)
# requested status -> the status it must leave
ALLOWED_FROM = {VERIFIED: PENDING_REVIEW, REJECTED: PENDING_REVIEW, DISPENSED: VERIFIED}
# Highest alert severity first, then oldest: the index "pharmacy_queue" serves it.
QUEUE_SORT = (("safety.rank", -1), ("createdAt", 1), ("_id", 1))
QUEUE_TYPES = (int, datetime, ObjectId)
QUEUE_LIST = "pharmacyQueue"
MAX_RANK = 3  # CRITICAL


class VerificationConflict(Exception):
    def __init__(self, message: str, current: str | None) -> None:
        super().__init__(message)
        self.current = current


def _queue_filter(minimum: int) -> Document:
    query: Document = {"verification.status": PENDING_REVIEW}
    if minimum > 0:
        # $in, not $gte: the embedded server returns nothing for $gte over the descending
        # index key (measured); an explicit list is equally served by the index everywhere.
        query["safety.rank"] = {"$in": list(range(minimum, MAX_RANK + 1))}
    return query


async def pharmacy_queue_page(
    store: PrescriptionStore, *, request: PageRequest, minimum: int
) -> Page[Document]:
    """Worst alert first, then oldest. A later page walks the few ranks one at a time
    from the cursor's: each query is then equalities plus one range on createdAt, which
    the pharmacy_queue index serves on the embedded server too (an `$or` cursor filter
    made it scan every prescription)."""
    scope = await store.scope.mongo_filter(store.collection_name)
    wanted = request.first + 1
    if not request.after:
        return _queue_page(
            await _find(store, merge(_queue_filter(minimum), scope), wanted, QUEUE_SORT), request
        )
    rank, created_at, after_id = decode_cursor(
        request.after, list_name=QUEUE_LIST, types=QUEUE_TYPES
    )
    cursor_key = (created_at, after_id)
    rows: list[Document] = []
    for current in range(rank, minimum - 1, -1):
        query = merge({"verification.status": PENDING_REVIEW, "safety.rank": current}, scope)
        if current == rank:
            # Rows tied with the cursor on createdAt come back too: drop them here.
            query = merge(query, {"createdAt": {"$gte": created_at}})
            limit = wanted - len(rows) + _TIES
            while True:
                fetched = await _find(store, query, limit, _WITHIN_RANK)
                kept = [row for row in fetched if (row["createdAt"], row["_id"]) > cursor_key]
                if len(kept) >= wanted or len(fetched) < limit:
                    break
                limit *= 4
        else:
            kept = await _find(store, query, wanted - len(rows), _WITHIN_RANK)
        rows += kept[: wanted - len(rows)]
        if len(rows) >= wanted:
            break
    return _queue_page(rows, request)


_TIES = 4
_WITHIN_RANK = (("createdAt", 1), ("_id", 1))


async def _find(
    store: PrescriptionStore, query: Document, limit: int, sort: tuple[tuple[str, int], ...]
) -> list[Document]:
    cursor = store.collection.find(query).sort(list(sort)).limit(limit)
    return await cursor.batch_size(limit + 1).to_list()


def _queue_page(rows: list[Document], request: PageRequest) -> Page[Document]:
    return build_page(rows, request, _queue_key, list_name=QUEUE_LIST)


def _queue_key(row: Document) -> list[Any]:
    key = sort_key(row, QUEUE_SORT)
    key[0] = (row.get("safety") or {}).get("rank", 0)
    return key


async def queue_count(store: PrescriptionStore, *, minimum: int) -> int:
    return await store.count(filter=_queue_filter(minimum))


async def transition(
    store: PrescriptionStore,
    *,
    id: ObjectId,
    requested: str,
    by: str,
    rejectionReason: str | None = None,  # noqa: N803 - the stored field's name
) -> Document:
    current = await store.get(id=id)
    status = (current.get("verification") or {}).get("status")
    leaving = ALLOWED_FROM[requested]
    if status != leaving:
        raise VerificationConflict(
            f"a prescription {status.lower().replace('_', ' ') if status else 'not under review'} "
            f"cannot become {requested.lower().replace('_', ' ')}",
            status,
        )
    now = utcnow()
    if requested == DISPENSED:
        changes: Document = {
            "verification.status": DISPENSED,
            "verification.dispensedBy": by,
            "verification.dispensedAt": now,
        }
    else:
        changes = {
            "verification.status": requested,
            "verification.reviewedBy": by,
            "verification.reviewedAt": now,
        }
        if rejectionReason is not None:
            changes["verification.rejectionReason"] = rejectionReason
    document = await store.update(id=id, changes=changes, expect={"verification.status": leaving})
    if document is None:
        latest = await store.get(id=id)
        raise VerificationConflict(
            "the prescription was reviewed meanwhile; read it again",
            (latest.get("verification") or {}).get("status"),
        )
    return document
