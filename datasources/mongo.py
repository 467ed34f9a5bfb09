"""The process-wide AsyncMongoClient and the indexes every collection needs."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from settings import Settings


def create_client(uri: str, settings: Settings, **options) -> AsyncMongoClient:
    # One client per process: it owns the connection pool. Timeouts are explicit so a
    # stalled server turns into an error instead of a hung request.
    return AsyncMongoClient(
        uri,
        tz_aware=True,
        timeoutMS=settings.mongodb_timeout_ms,
        serverSelectionTimeoutMS=settings.mongodb_server_selection_timeout_ms,
        connectTimeoutMS=settings.mongodb_server_selection_timeout_ms,
        appname="caregraph",
        **options,
    )


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
        IndexModel([("specialty", ASCENDING), ("nameKey", ASCENDING)], name="specialty"),
        IndexModel(
            [("userId", ASCENDING)],
            name="user",
            unique=True,
            partialFilterExpression={"userId": {"$type": "string"}},
        ),
    ],
    "appointments": [
        IndexModel([("doctorId", ASCENDING), ("start", ASCENDING)], name="doctor_start"),
        IndexModel([("patientId", ASCENDING), ("start", ASCENDING)], name="patient_start"),
        IndexModel([("start", ASCENDING), ("_id", ASCENDING)], name="start_order"),
        IndexModel([("status", ASCENDING), ("start", ASCENDING)], name="status_start"),
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
        IndexModel([("patientId", ASCENDING), ("startDate", DESCENDING)], name="patient"),
        IndexModel([("doctorId", ASCENDING), ("startDate", DESCENDING)], name="doctor"),
        IndexModel([("status", ASCENDING)], name="status"),
        # Reports select prescriptions by when they started.
        IndexModel([("startDate", ASCENDING)], name="start_date"),
    ],
}


async def ensure_indexes(db: AsyncDatabase) -> None:
    for collection, models in INDEXES.items():
        await db[collection].create_indexes(models)
