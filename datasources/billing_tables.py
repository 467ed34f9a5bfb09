"""The billing SQL schema as SQLAlchemy Core tables. Migrations in migrations/versions
create it; this module is what queries are written against."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


bills = sa.Table(
    "bills",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("patient_id", sa.String(24), nullable=False),
    # One bill per appointment; bills for other services have no appointment.
    sa.Column("appointment_id", sa.String(24), nullable=True, unique=True),
    sa.Column("disease", sa.String(200), nullable=False),
    # Integer cents: exact on SQLite and PostgreSQL alike.
    sa.Column("total_cost_cents", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("paid", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("paid_at", UTCDateTime, nullable=True),
    sa.CheckConstraint("total_cost_cents >= 0", name="bills_total_cost_not_negative"),
    sa.Index("bills_patient_created", "patient_id", "created_at", "id"),
    sa.Index("bills_created", "created_at", "id"),
)
