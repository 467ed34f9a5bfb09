"""Report aggregations. All heavy work runs inside MongoDB pipelines and SQL aggregates;
callers receive one small row per group. Pipelines avoid the embedded server's known
gaps (see shared MONGODB_NOTES): no paths through arrays of subdocuments inside
expressions, no $count inside sub-pipelines, and distinct counts by grouping twice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.appointments import CANCELLED, COMPLETED, SCHEDULED
from datasources.billing_tables import bills
from datasources.documents import Document

Row = dict[str, Any]
DAY_MS = 86_400_000


def _per_patient_then_per(key: Any, sums: dict[str, Any]) -> list[Document]:
    """Group by (key, patient), then by key: `patients` counts distinct patients.

    Cheaper than $addToSet + $size, which the embedded server evaluates in time
    quadratic in the group size (every report timed out on the large data set), and
    equally exact on real MongoDB. `sums` are {name: per-document expression} to add up.
    """
    return [
        {
            "$group": {
                "_id": {"key": key, "patient": "$patientId"},
                **{name: {"$sum": expression} for name, expression in sums.items()},
            }
        },
        {
            "$group": {
                "_id": "$_id.key",
                "patients": {"$sum": 1},
                **{name: {"$sum": f"${name}"} for name in sums},
            }
        },
    ]


def _range(field: str, starts_from: datetime | None, before: datetime | None) -> Document:
    bounds: dict[str, datetime] = {}
    if starts_from is not None:
        bounds["$gte"] = starts_from
    if before is not None:
        bounds["$lt"] = before
    return {field: bounds} if bounds else {}


class ReportStore:
    """Aggregates over every record: who may run a report, and how much of it they see,
    is decided by the field's permission and auth/privacy.py, not by row scopes."""

    def __init__(self, db: AsyncDatabase[Document], engine: AsyncEngine) -> None:
        self.db, self.engine = db, engine

    async def _aggregate(self, collection: str, pipeline: list[Document]) -> list[Row]:
        return await (await self.db[collection].aggregate(pipeline)).to_list()

    async def doctor_activity(
        self, *, starts_from: datetime | None, before: datetime | None
    ) -> list[Row]:
        """Per doctor: appointments (not cancelled) and distinct patients, busiest first."""
        return await self._aggregate(
            "appointments",
            [
                {"$match": {"status": {"$ne": CANCELLED}, **_range("start", starts_from, before)}},
                *_per_patient_then_per("$doctorId", {"appointments": 1}),
                {"$sort": {"patients": -1, "appointments": -1, "_id": 1}},
                {
                    "$lookup": {
                        "from": "doctors",
                        "localField": "_id",
                        "foreignField": "_id",
                        "as": "doctor",
                        "pipeline": [
                            {"$project": {"givenName": 1, "familyName": 1, "specialty": 1}}
                        ],
                    }
                },
                {"$unwind": "$doctor"},
            ],
        )

    async def treatment_episodes(
        self, *, starts_from: datetime | None, before: datetime | None, open_until: datetime
    ) -> list[Row]:
        """Per disease: patients treated and their average episode length in days.

        An episode is one patient's care for one disease: from the earliest start of a
        COMPLETED visit diagnosing it or a prescription indicated for it, to the latest end
        of those (a prescription with no end date runs until `open_until`, or its start if
        that is later). Only visits
        and prescriptions starting in the range count.
        """
        prescriptions = [
            {
                "$match": {
                    "indication": {"$type": "string"},
                    **_range("startDate", starts_from, before),
                }
            },
            {
                "$project": {
                    "_id": 0,
                    "patientId": 1,
                    "disease": "$indication",
                    "begin": "$startDate",
                    # Never before it starts: a prescription for next month is not a
                    # negative episode today.
                    "finish": {"$max": [{"$ifNull": ["$endDate", open_until]}, "$startDate"]},
                }
            },
        ]
        rows = await self._aggregate(
            "appointments",
            [
                {
                    "$match": {
                        "status": COMPLETED,
                        "diagnosis": {"$type": "string"},
                        **_range("start", starts_from, before),
                    }
                },
                {
                    "$project": {
                        "_id": 0,
                        "patientId": 1,
                        "disease": "$diagnosis",
                        "begin": "$start",
                        "finish": "$end",
                    }
                },
                {"$unionWith": {"coll": "prescriptions", "pipeline": prescriptions}},
                {
                    "$group": {
                        "_id": {"patient": "$patientId", "disease": "$disease"},
                        "begin": {"$min": "$begin"},
                        "finish": {"$max": "$finish"},
                    }
                },
                {
                    "$group": {
                        "_id": "$_id.disease",
                        "patients": {"$sum": 1},
                        "averageMs": {"$avg": {"$subtract": ["$finish", "$begin"]}},
                    }
                },
                {"$sort": {"_id": 1}},
            ],
        )
        return [
            {"disease": r["_id"], "patients": r["patients"], "averageDays": r["averageMs"] / DAY_MS}
            for r in rows
        ]

    async def monthly_appointments(self, *, year: int) -> list[Row]:
        """Per calendar month (UTC) of the year: appointments by status, distinct patients."""

        def count(status: str) -> Document:
            return {"$cond": [{"$eq": ["$status", status]}, 1, 0]}

        start = datetime(year, 1, 1, tzinfo=UTC)
        end = datetime(year + 1, 1, 1, tzinfo=UTC)
        rows = await self._aggregate(
            "appointments",
            [
                {"$match": _range("start", start, end)},
                *_per_patient_then_per(
                    {"$month": "$start"},
                    {
                        "scheduled": count(SCHEDULED),
                        "completed": count(COMPLETED),
                        "cancelled": count(CANCELLED),
                    },
                ),
            ],
        )
        return [
            {
                "month": r["_id"],
                "scheduled": r["scheduled"],
                "completed": r["completed"],
                "cancelled": r["cancelled"],
                "patients": r["patients"],
            }
            for r in rows
        ]

    async def prescription_costs(
        self, *, starts_from: datetime | None, before: datetime | None
    ) -> list[Row]:
        """Per indication: prescriptions started in the range, their average cost in cents,
        distinct patients."""
        rows = await self._aggregate(
            "prescriptions",
            [
                {
                    "$match": {
                        "indication": {"$type": "string"},
                        **_range("startDate", starts_from, before),
                    }
                },
                *_per_patient_then_per(
                    "$indication", {"prescriptions": 1, "totalCents": "$costCents"}
                ),
            ],
        )
        return [
            {
                "disease": r["_id"],
                "prescriptions": r["prescriptions"],
                "averageCents": r["totalCents"] / r["prescriptions"],
                "patients": r["patients"],
            }
            for r in rows
        ]

    async def billed_totals(
        self, *, starts_from: datetime | None, before: datetime | None
    ) -> list[Row]:
        """Per disease: bills created in the range (a visit is billed when it completes,
        for what it diagnosed), average total in cents, distinct patients. One GROUP BY."""
        statement = sa.select(
            bills.c.disease,
            sa.func.count().label("bills"),
            sa.func.avg(bills.c.total_cost_cents).label("average_cents"),
            sa.func.count(sa.distinct(bills.c.patient_id)).label("patients"),
        ).group_by(bills.c.disease)
        if starts_from is not None:
            statement = statement.where(bills.c.created_at >= starts_from)
        if before is not None:
            statement = statement.where(bills.c.created_at < before)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).mappings().all()
        return [
            {
                "disease": r["disease"],
                "bills": r["bills"],
                "averageCents": float(r["average_cents"]),
                "patients": r["patients"],
            }
            for r in rows
        ]
