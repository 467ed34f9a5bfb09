"""`caregraph backup create`: every MongoDB collection and every SQL row, streamed.

Consistency: the SQL tables are read inside one read-only transaction (REPEATABLE READ
on PostgreSQL; a read transaction on SQLite), then the MongoDB collections inside one
snapshot session (`readConcern: snapshot`). Each store is exactly one point in time,
and the MongoDB point is later than the SQL one: bills (SQL) reference appointments
(MongoDB) created before them, so every bill's appointment is in the archive. Records
written between the two points may be in MongoDB but have no bill yet, which is a state
the application itself passes through. (Real MongoDB keeps snapshot history for
`minSnapshotHistoryWindowInSeconds`, 300 s by default: raise it for data sets that take
longer to read, or quiesce writers.)

Generic by design: whatever collections and tables exist are exported, so users, the
key vault and the audit trail are included without code changes here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from typing import IO, Any

import sqlalchemy as sa
from bson import json_util
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tqdm import tqdm

from backup.archive import FORMAT_VERSION, ArchiveWriter, mac
from backup.members import (
    AUTHENTICATOR,
    BEGIN,
    DOCUMENT,
    END,
    MANIFEST,
    MONGODB,
    SQL,
    MemberDigest,
    encode_row,
    table_order,
)
from datasources.billing_tables import metadata as billing_metadata

RAW = CodecOptions(document_class=RawBSONDocument)
BATCH = 1000
SKIPPED_TABLES = {"alembic_version"}  # the revision goes into the manifest instead


def caregraph_version() -> str:
    try:
        return metadata.version("caregraph")
    except metadata.PackageNotFoundError:
        return "unknown"


async def sql_tables(connection: AsyncConnection) -> list[sa.Table]:
    """Every table in the database: the app's own definitions where it has them (their
    column types normalise values, e.g. UTC datetimes on SQLite), reflected otherwise."""

    def reflect(sync: sa.Connection) -> list[sa.Table]:
        names = sorted(set(sa.inspect(sync).get_table_names()) - SKIPPED_TABLES)
        reflected = sa.MetaData()
        return [
            billing_metadata.tables[name]
            if name in billing_metadata.tables
            else sa.Table(name, reflected, autoload_with=sync)
            for name in names
        ]

    return await connection.run_sync(reflect)


async def migration_revision(connection: AsyncConnection) -> str | None:
    exists = await connection.run_sync(lambda sync: sa.inspect(sync).has_table("alembic_version"))
    if not exists:
        return None
    result = await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
    return result.scalar()


async def user_collections(db: AsyncDatabase[Any]) -> list[str]:
    return sorted(n for n in await db.list_collection_names() if not n.startswith("system."))


async def create_backup(
    db: AsyncDatabase[Any],
    engine: AsyncEngine,
    out: IO[bytes],
    key: bytes,
    *,
    progress: bool = False,
    on_document: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Write one archive to `out`; returns its manifest."""
    writer = ArchiveWriter(out, key)
    collections = await user_collections(db)
    estimate = sum([await db[name].estimated_document_count() for name in collections])
    bar = tqdm(total=estimate, unit="doc", desc="backup", disable=not progress, leave=False)
    manifest: dict[str, Any] = {
        "formatVersion": FORMAT_VERSION,
        "caregraphVersion": caregraph_version(),
        "createdAt": datetime.now(UTC).isoformat(),
        # No data migrations exist yet; the field is there for the first one.
        "dataMigrationVersion": None,
        "consistency": "sql-transaction-then-mongodb-snapshot",
        "sql": {"dialect": engine.dialect.name, "tables": {}},
        "mongodb": {"database": db.name, "collections": {}},
    }

    def emit(payload: bytes, digest: MemberDigest) -> None:
        writer.record(DOCUMENT, payload)
        digest.add(payload)
        bar.update(1)
        if on_document is not None:
            on_document()

    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            await connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        async with connection.begin():
            manifest["sqlMigrationRevision"] = await migration_revision(connection)
            for table in await sql_tables(connection):
                writer.record(BEGIN, _begin(SQL, table.name, columns=list(table.columns.keys())))
                digest = MemberDigest()
                rows = await connection.stream(
                    sa.select(table)
                    .order_by(*table_order(table))
                    .execution_options(yield_per=BATCH)
                )
                async for row in rows:
                    emit(encode_row(dict(row._mapping)), digest)
                writer.record(END, json.dumps(digest.summary()).encode())
                manifest["sql"]["tables"][table.name] = digest.summary()
    bar.total = estimate + sum(t["count"] for t in manifest["sql"]["tables"].values())

    # Pass a client without timeoutMS (backup/stores.py, backup_client): PyMongo bounds
    # a cursor's whole life by it, which a large export outlives. (Range pages by _id
    # would avoid long cursors, but the embedded server plans each page as a scan: 25x
    # slower, measured.)
    await _export_collections(db, collections, writer, manifest, emit)
    bar.close()

    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    writer.record(MANIFEST, manifest_bytes)
    writer.record(AUTHENTICATOR, mac(writer.mac_key, manifest_bytes).encode())
    writer.close()
    return manifest


async def _export_collections(
    db: AsyncDatabase[Any],
    collections: list[str],
    writer: ArchiveWriter,
    manifest: dict[str, Any],
    emit: Callable[[bytes, MemberDigest], None],
) -> None:
    async with db.client.start_session(snapshot=True) as session:
        for name in collections:
            indexes = [json_util.dumps(spec) async for spec in await db[name].list_indexes()]
            writer.record(BEGIN, _begin(MONGODB, name, indexes=indexes))
            digest = MemberDigest()
            cursor = (
                db.get_collection(name, codec_options=RAW)
                .find({}, session=session)
                .sort("_id", 1)
                .batch_size(BATCH)
            )
            async for document in cursor:
                emit(document.raw, digest)
            writer.record(END, json.dumps(digest.summary()).encode())
            manifest["mongodb"]["collections"][name] = digest.summary()


def _begin(kind: str, name: str, **details: Any) -> bytes:
    return json.dumps({"kind": kind, "name": name, **details}, sort_keys=True).encode()
