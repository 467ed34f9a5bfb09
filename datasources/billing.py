"""Bills in the SQL database: batched lookups, keyset pages, writes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from audit.records import Action
from datasources.billing_tables import bills
from datasources.documents import ChangeHook, utcnow
from datasources.pagination import Page, PageRequest, build_page, decode_cursor
from datasources.scope import AccessScope
from errors import Conflict, NotFound

Row = dict[str, Any]
ORDER = (bills.c.created_at.desc(), bills.c.id.desc())


def _key(row: Row) -> list[Any]:
    return [row["created_at"], row["id"]]


def _after(cursor: str) -> sa.ColumnElement[bool]:
    created_at, id_ = decode_cursor(cursor, list_name="bills", types=(datetime, int))
    return sa.or_(
        bills.c.created_at < created_at,
        sa.and_(bills.c.created_at == created_at, bills.c.id < id_),
    )


class BillingRepository:
    def __init__(
        self, engine: AsyncEngine, scope: AccessScope, on_change: ChangeHook | None = None
    ) -> None:
        self.engine = engine
        self.scope = scope
        self.on_change = on_change

    async def _changed(self) -> None:
        if self.on_change is not None:
            await self.on_change()

    async def _rows(self, statement: sa.Executable) -> list[Row]:
        async with self.engine.connect() as connection:
            result = await connection.execute(statement)
            return [dict(row) for row in result.mappings()]

    async def get_many(self, *, ids: Sequence[int]) -> list[Row | None]:
        rows = await self._rows(
            sa.select(bills).where(bills.c.id.in_(set(ids)), self.scope.sql_condition())
        )
        by_id = {row["id"]: row for row in rows}
        return [by_id.get(id_) for id_ in ids]

    async def by_appointment_ids(self, *, appointment_ids: Sequence[str]) -> list[Row | None]:
        rows = await self._rows(
            sa.select(bills).where(
                bills.c.appointment_id.in_(set(appointment_ids)), self.scope.sql_condition()
            )
        )
        by_appointment = {row["appointment_id"]: row for row in rows}
        return [by_appointment.get(id_) for id_ in appointment_ids]

    async def page(
        self, *, request: PageRequest, patient_id: str | None = None, paid: bool | None = None
    ) -> Page[Row]:
        statement = (
            sa.select(bills)
            .where(self.scope.sql_condition())
            .order_by(*ORDER)
            .limit(request.first + 1)
        )
        if patient_id is not None:
            statement = statement.where(bills.c.patient_id == patient_id)
        if paid is not None:
            statement = statement.where(bills.c.paid == paid)
        if request.after:
            statement = statement.where(_after(request.after))
        return build_page(await self._rows(statement), request, _key, list_name="bills")

    async def pages_by_patient(
        self, *, patient_ids: Sequence[str], request: PageRequest
    ) -> dict[str, Page[Row]]:
        """One query returns a page of bills per patient (row_number per patient)."""
        position = sa.func.row_number().over(partition_by=bills.c.patient_id, order_by=ORDER)
        inner = sa.select(bills, position.label("position")).where(
            bills.c.patient_id.in_(set(patient_ids)), self.scope.sql_condition()
        )
        if request.after:
            inner = inner.where(_after(request.after))
        ranked = inner.subquery()
        statement = (
            sa.select(*[ranked.c[c.name] for c in bills.columns])
            .where(ranked.c.position <= request.first + 1)
            .order_by(ranked.c.patient_id, ranked.c.position)
        )
        rows_by_patient: dict[str, list[Row]] = {}
        for row in await self._rows(statement):
            rows_by_patient.setdefault(row["patient_id"], []).append(row)
        return {
            patient_id: build_page(
                rows_by_patient.get(patient_id, []), request, _key, list_name="bills"
            )
            for patient_id in patient_ids
        }

    async def count(self, *, patient_id: str | None = None, paid: bool | None = None) -> int:
        statement = sa.select(sa.func.count()).select_from(bills).where(self.scope.sql_condition())
        if patient_id is not None:
            statement = statement.where(bills.c.patient_id == patient_id)
        if paid is not None:
            statement = statement.where(bills.c.paid == paid)
        async with self.engine.connect() as connection:
            return int((await connection.execute(statement)).scalar_one())

    async def counts_by_patient(self, *, patient_ids: Sequence[str]) -> dict[str, int]:
        """Each patient's number of bills in one GROUP BY (a nested totalCount)."""
        statement = (
            sa.select(bills.c.patient_id, sa.func.count())
            .where(self.scope.sql_condition(), bills.c.patient_id.in_(set(patient_ids)))
            .group_by(bills.c.patient_id)
        )
        async with self.engine.connect() as connection:
            counted = {row[0]: int(row[1]) for row in await connection.execute(statement)}
        return {patient_id: counted.get(patient_id, 0) for patient_id in patient_ids}

    async def _audited(self, action: Action, row: Any, fields: Row) -> None:
        """The change's audit record, written before the SQL transaction commits: if it
        cannot be stored, the change rolls back (datasources/phi_access.py)."""
        if self.scope.audit is not None:
            await self.scope.audit.record_row_write(
                action=action,
                resource_type="Bill",
                record_id=str(row["id"]),
                patient_id=str(row["patient_id"]),
                fields=fields,
            )

    async def get(self, *, id: int) -> Row:
        rows = await self._rows(
            sa.select(bills).where(bills.c.id == id, self.scope.sql_condition())
        )
        if not rows:
            raise NotFound("Bill", str(id))
        return rows[0]

    async def create(self, *, fields: Row) -> Row:
        values = {"created_at": utcnow(), "paid": False, **fields}
        if values["paid"] and values.get("paid_at") is None:
            values["paid_at"] = values["created_at"]
        try:
            async with self.engine.begin() as connection:
                result = await connection.execute(
                    bills.insert().values(**values).returning(*bills.columns)
                )
                created = dict(result.mappings().one())
                await self._audited(Action.CREATE, created, fields)
        except IntegrityError:
            raise Conflict(
                "this appointment already has a bill", appointmentId=fields.get("appointment_id")
            ) from None
        await self._changed()
        return created

    async def update(self, *, id: int, changes: Row) -> Row:
        if changes.get("paid") is True:
            changes = {"paid_at": utcnow(), **changes}
        elif changes.get("paid") is False:
            changes = {**changes, "paid_at": None}
        try:
            async with self.engine.begin() as connection:
                result = await connection.execute(
                    bills.update()
                    .where(bills.c.id == id, self.scope.sql_condition())
                    .values(**changes)
                    .returning(*bills.columns)
                )
                row = result.mappings().one_or_none()
                if row is not None:
                    await self._audited(Action.UPDATE, row, changes)
        except IntegrityError:
            raise Conflict("that appointment already has a bill") from None
        if row is None:
            raise NotFound("Bill", str(id))
        await self._changed()
        return dict(row)

    async def delete(self, *, id: int) -> Row:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                bills.delete()
                .where(bills.c.id == id, bills.c.paid.is_(False), self.scope.sql_condition())
                .returning(*bills.columns)
            )
            row = result.mappings().one_or_none()
            if row is None:
                exists = await connection.execute(
                    sa.select(bills.c.id).where(bills.c.id == id, self.scope.sql_condition())
                )
                if exists.first() is None:
                    raise NotFound("Bill", str(id))
                raise Conflict("a paid bill cannot be deleted", id=str(id))
            await self._audited(Action.DELETE, row, {})
        await self._changed()
        return dict(row)

    async def exists_for(self, *, column: str, value: str) -> bool:
        statement = sa.select(bills.c.id).where(bills.c[column] == value).limit(1)
        return bool(await self._rows(statement))

    async def insert_many(self, *, rows: list[Row]) -> None:
        """Bulk load for the demo data generator."""
        if rows:
            async with self.engine.begin() as connection:
                await connection.execute(bills.insert(), rows)
