"""`caregraph backup restore FILE`: verify everything, then write, then check again.

1. The whole archive is verified first (backup/verify.py): a damaged, edited or
   wrong-key archive is refused before a single byte reaches a database.
2. The target must be empty (no documents, no rows), unless `replace=True` (the CLI
   asks for explicit confirmation), which empties it first.
3. SQL: the schema is brought to the archive's migration revision, rows are inserted
   (sequences moved past the restored ids on PostgreSQL), then the schema goes on to
   the current revision. MongoDB: documents are written back as their exact BSON
   bytes, then the collection's indexes are recreated.
4. Every collection and table is read back and its count and SHA-256 compared with
   the manifest.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from bson import json_util
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from backup.create import RAW, migration_revision, sql_tables, user_collections
from backup.members import MONGODB, SQL, MemberDigest, decode_row, encode_row, table_order
from backup.verify import Begin, events, verify_archive
from datasources.sql import MIGRATIONS_DIR

log = logging.getLogger("caregraph.backup")
BATCH = 500


class RestoreRefused(Exception):
    pass


async def _non_empty(db: AsyncDatabase[Any], engine: AsyncEngine) -> list[str]:
    found = []
    for name in await user_collections(db):
        if await db[name].find_one({}, projection={"_id": 1}) is not None:
            found.append(f"mongodb:{name}")
    async with engine.connect() as connection:
        for table in await sql_tables(connection):
            if (await connection.execute(sa.select(sa.func.count()).select_from(table))).scalar():
                found.append(f"sql:{table.name}")
    return found


def _upgrade(connection: sa.Connection, revision: str) -> None:
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def _prepare_sql(engine: AsyncEngine, revision: str | None) -> None:
    async with engine.begin() as connection:
        current = await migration_revision(connection)
        if revision is None:
            raise RestoreRefused("the archive records no SQL migration revision")
        if current not in (None, revision):
            raise RestoreRefused(
                f"the billing schema is at revision {current}, the archive at {revision}: "
                "restore into a fresh database"
            )
        await connection.run_sync(_upgrade, revision)


async def _empty(db: AsyncDatabase[Any], engine: AsyncEngine) -> None:
    for name in await user_collections(db):
        await db.drop_collection(name)
    async with engine.begin() as connection:
        for table in reversed(await sql_tables(connection)):
            await connection.execute(table.delete())


async def restore_backup(
    path: Path, key: bytes, db: AsyncDatabase[Any], engine: AsyncEngine, *, replace: bool = False
) -> dict[str, Any]:
    manifest = verify_archive(path, key)  # raises ArchiveInvalid: nothing written yet
    occupied = await _non_empty(db, engine)
    if occupied and not replace:
        raise RestoreRefused(
            f"the target is not empty ({', '.join(occupied[:5])}"
            f"{', ...' if len(occupied) > 5 else ''}): restore into empty databases, or "
            "replace them explicitly (--replace)"
        )
    if occupied:
        await _empty(db, engine)
    await _prepare_sql(engine, manifest.get("sqlMigrationRevision"))
    # `caregraph backup restore` runs on a client without the request timeout.
    await _write(path, key, db, engine)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, "head")
    await check_target(manifest, db, engine)
    return manifest


async def _write(path: Path, key: bytes, db: AsyncDatabase[Any], engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        tables = {table.name: table for table in await sql_tables(connection)}
        member: Begin | None = None
        batch: list[Any] = []

        async def flush() -> None:
            if not batch or member is None:
                return
            if member.kind == SQL:
                await connection.execute(tables[member.name].insert(), batch)
            else:
                await db[member.name].insert_many(batch, ordered=True)
            batch.clear()

        with open(path, "rb") as source:  # noqa: ASYNC230 - a CLI job; reads are chunked
            for event, value in events(source, key):
                if event == "begin":
                    member = value
                    if member.kind == SQL and member.name not in tables:
                        raise RestoreRefused(f"the target has no SQL table {member.name!r}")
                    if member.kind == MONGODB:
                        await db.create_collection(member.name)
                elif event == "document":
                    assert member is not None
                    batch.append(
                        decode_row(value) if member.kind == SQL else RawBSONDocument(value)
                    )
                    if len(batch) >= BATCH:
                        await flush()
                elif event == "end":
                    await flush()
                    assert member is not None
                    if member.kind == SQL:
                        await _advance_sequences(connection, tables[member.name])
                    else:
                        await _create_indexes(db, member)
                    member = None


async def _advance_sequences(connection: Any, table: sa.Table) -> None:
    if connection.dialect.name != "postgresql":
        return  # SQLite's AUTOINCREMENT follows the largest id by itself
    for column in table.primary_key.columns:
        if column.autoincrement is True or (
            column.autoincrement == "auto" and isinstance(column.type, sa.Integer)
        ):
            await connection.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                    f'COALESCE(MAX("{column.name}"), 1), MAX("{column.name}") IS NOT NULL) '
                    f'FROM "{table.name}"'
                )
            )


async def _create_indexes(db: AsyncDatabase[Any], member: Begin) -> None:
    specs = []
    for raw in member.details.get("indexes", []):
        spec = dict(json_util.loads(raw))
        if spec.get("name") == "_id_":
            continue
        spec.pop("v", None)
        spec.pop("ns", None)
        specs.append(spec)
    if specs:
        await db.command({"createIndexes": member.name, "indexes": specs})


async def check_target(
    manifest: dict[str, Any], db: AsyncDatabase[Any], engine: AsyncEngine
) -> None:
    """Read every restored collection and table back; raise unless all match."""
    problems = []
    for name, expected in manifest["mongodb"]["collections"].items():
        digest = MemberDigest()
        cursor = db.get_collection(name, codec_options=RAW).find({}).sort("_id", 1)
        async for document in cursor:
            digest.add(document.raw)
        if digest.summary() != expected:
            problems.append(f"mongodb:{name}")
    async with engine.connect() as connection:
        tables = {table.name: table for table in await sql_tables(connection)}
        for name, expected in manifest["sql"]["tables"].items():
            digest = MemberDigest()
            rows = await connection.stream(
                sa.select(tables[name]).order_by(*table_order(tables[name]))
            )
            async for row in rows:
                digest.add(encode_row(dict(row._mapping)))
            if digest.summary() != expected:
                problems.append(f"sql:{name}")
    if problems:
        raise RestoreRefused(f"restored data does not match the archive: {', '.join(problems)}")
