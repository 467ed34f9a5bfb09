"""The process-wide AsyncMongoClient and the indexes every collection needs."""

from __future__ import annotations

import itertools
from typing import Any, TypeVar, overload

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from datasources.documents import Document
from settings import Settings

Client = TypeVar("Client", bound=AsyncMongoClient[Document])


# With `client_class` (a subclass, e.g. runtime/mongo_gate.py's), the client is of it.
@overload
def create_client(
    uri: str, settings: Settings, *, client_class: type[Client], **options: Any
) -> Client: ...


@overload
def create_client(uri: str, settings: Settings, **options: Any) -> AsyncMongoClient[Document]: ...


def create_client(
    uri: str,
    settings: Settings,
    *,
    client_class: type[AsyncMongoClient[Document]] = AsyncMongoClient,
    **options: Any,
) -> AsyncMongoClient[Document]:
    # One client per process: it owns the connection pool. Timeouts are explicit so a
    # stalled server turns into an error instead of a hung request. `options` are more
    # AsyncMongoClient keyword options (event listeners, automatic encryption).
    return client_class(
        uri,
        tz_aware=True,
        timeoutMS=settings.mongodb_timeout_ms,
        serverSelectionTimeoutMS=settings.mongodb_server_selection_timeout_ms,
        connectTimeoutMS=settings.mongodb_server_selection_timeout_ms,
        appname="caregraph",
        maxPoolSize=settings.ops.mongodb_max_pool_size,
        **options,
    )


def list_indexes(
    prefix: str,
    equality_fields: tuple[str, ...],
    sort: tuple[tuple[str, int], ...],
    *,
    set_fields: tuple[str, ...] = (),
) -> list[IndexModel]:
    """One compound index per combination of a list's equality filters (row scopes
    included), each followed by the list's sort keys with the `_id` tiebreaker.

    Equality + sort is what lets mongod return a page in order without a blocking
    sort, and the embedded server only uses an index whose leading fields are exactly
    the filter's equality fields (with at most one operator condition next). A field
    in `set_fields` is also queried as `$in` (a parent batch of a nested list, a
    doctor's related patients): the embedded planner serves `$in` only right after
    the equalities, so each such field also gets an index where it comes last.
    """
    models: list[IndexModel] = []
    seen: set[tuple[str, ...]] = set()
    for size in range(1, len(equality_fields) + 1):
        for combination in itertools.combinations(equality_fields, size):
            orders = [combination]
            for field in combination:
                if field in set_fields and combination[-1] != field:
                    orders.append((*[f for f in combination if f != field], field))
            for order in orders:
                if order in seen:
                    continue
                seen.add(order)
                keys = [(field, ASCENDING) for field in order] + list(sort)
                name = f"{prefix}_by_" + "_".join(order)
                models.append(IndexModel(keys, name=name))
    return models


APPOINTMENT_SORT = (("start", ASCENDING), ("_id", ASCENDING))
PRESCRIPTION_SORT = (("startDate", DESCENDING), ("_id", DESCENDING))
PERSON_SORT = (("nameKey", ASCENDING), ("_id", ASCENDING))

INDEXES: dict[str, list[IndexModel]] = {
    "patients": [
        IndexModel([("searchTerms", ASCENDING)], name="search_terms"),
        IndexModel([("nameKey", ASCENDING), ("_id", ASCENDING)], name="name_order"),
        IndexModel(
            [("userId", ASCENDING)],
            name="user",
            unique=True,
            partialFilterExpression={"userId": {"$type": "string"}},
        ),
    ],
    "doctors": [
        IndexModel([("searchTerms", ASCENDING)], name="search_terms"),
        IndexModel([("nameKey", ASCENDING), ("_id", ASCENDING)], name="name_order"),
        *list_indexes(
            "list",
            ("specialty", "acceptingNewPatients", "availability.dayOfWeek"),
            PERSON_SORT,
        ),
        IndexModel(
            [("userId", ASCENDING)],
            name="user",
            unique=True,
            partialFilterExpression={"userId": {"$type": "string"}},
        ),
    ],
    # Lists: each filter combination a list allows, its row scope included, has an
    # index of equality fields then sort keys (see list_indexes). Earlier two-field
    # indexes such as (doctorId, start) are prefixes of these, so they are gone here;
    # an existing deployment keeps them harmlessly until dropped.
    "appointments": [
        IndexModel([("start", ASCENDING), ("_id", ASCENDING)], name="start_order"),
        *list_indexes(
            "list",
            ("status", "doctorId", "patientId"),
            APPOINTMENT_SORT,
            set_fields=("doctorId", "patientId"),
        ),
    ],
    # One row per (doctor, 5-minute slot) an active appointment occupies. The unique
    # index is what makes double-booking impossible, even for concurrent requests.
    "appointment_slots": [
        IndexModel([("doctorId", ASCENDING), ("slot", ASCENDING)], name="doctor_slot", unique=True),
        IndexModel([("appointmentId", ASCENDING)], name="appointment"),
    ],
    "users": [
        IndexModel([("email", ASCENDING)], name="email", unique=True),
    ],
    # One pending sign-up per address; expired ones are deleted by the server.
    "pending_registrations": [
        IndexModel([("email", ASCENDING)], name="email", unique=True),
        IndexModel([("expiresAt", ASCENDING)], name="expiry", expireAfterSeconds=0),
    ],
    # The mail gateway drains unsent messages oldest first.
    "outbox": [IndexModel([("sentAt", ASCENDING), ("createdAt", ASCENDING)], name="unsent")],
    "refresh_tokens": [
        IndexModel([("family", ASCENDING)], name="family"),
        IndexModel([("userId", ASCENDING)], name="user"),
        # Expired refresh tokens are useless: let the server delete them.
        IndexModel([("expiresAt", ASCENDING)], name="expiry", expireAfterSeconds=0),
    ],
    "prescriptions": [
        # The list's own order; reports select prescriptions by when they started, a
        # range this index serves too (it replaces a single-field startDate index).
        IndexModel(list(PRESCRIPTION_SORT), name="list_order"),
        *list_indexes(
            "list",
            ("status", "doctorId", "patientId"),
            PRESCRIPTION_SORT,
            set_fields=("patientId",),
        ),
        # The pharmacist's queue (datasources/verification.py): pending, worst alert first.
        IndexModel(
            [
                ("verification.status", ASCENDING),
                ("safety.rank", DESCENDING),
                ("createdAt", ASCENDING),
                ("_id", ASCENDING),
            ],
            name="pharmacy_queue",
        ),
    ],
    "cds_feedback": [IndexModel([("serviceId", ASCENDING), ("at", DESCENDING)], name="service")],
}


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    for collection, models in INDEXES.items():
        await db[collection].create_indexes(models)
