"""The SQLAlchemy async engine for billing and the migration step run at start."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        Path(url.split(":///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
        return create_async_engine(url, connect_args={"timeout": 30})
    return create_async_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=10
    )


def _upgrade(connection: sa.Connection) -> None:
    # Alembic narrates every plugin and step at INFO; a service start needs none of it.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if connection.dialect.name == "postgresql":
        # Several workers may start at once: one migrates, the others wait and find
        # nothing left to do. The lock ends with the transaction.
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(7210041)"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
