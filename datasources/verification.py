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
from datasources.pagination import Page, PageRequest, after_filter, build_page, sort_key
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
    query = _queue_filter(minimum)
    if request.after:
        query = {
            "$and": [
                query,
                after_filter(request.after, QUEUE_SORT, list_name=QUEUE_LIST, types=QUEUE_TYPES),
            ]
        }
    scope = await store.scope.mongo_filter(store.collection_name)
    if scope:
        query = {"$and": [query, scope]}
    cursor = store.collection.find(query).sort(list(QUEUE_SORT)).limit(request.first + 1)
    rows = await cursor.batch_size(request.first + 2).to_list()
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
