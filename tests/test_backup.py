"""Backup archives: create, verify, refuse damage, restore into fresh databases."""

from __future__ import annotations

import argparse
import io
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pymongo import AsyncMongoClient

from backup.archive import MAGIC, ArchiveInvalid
from backup.cli import add_backup_commands, run_backup
from backup.create import RAW, create_backup, sql_tables
from backup.members import encode_row, table_order
from backup.restore import RestoreRefused, restore_backup
from backup.verify import verify_archive
from datasources.sql import create_engine
from runtime.ops_settings import OpsSettings
from settings import Settings
from tests.conftest import fresh_postgres_database

KEY = bytes(range(32))
OTHER_KEY = bytes(32)


async def mongo_contents(db) -> dict[str, list[bytes]]:
    names = sorted(n for n in await db.list_collection_names() if not n.startswith("system."))
    contents = {}
    for name in names:
        cursor = db.get_collection(name, codec_options=RAW).find({}).sort("_id", 1)
        contents[name] = [document.raw async for document in cursor]
    return contents


async def sql_contents(engine) -> dict[str, list[bytes]]:
    contents = {}
    async with engine.connect() as connection:
        for table in await sql_tables(connection):
            rows = await connection.execute(sa.select(table).order_by(*table_order(table)))
            contents[table.name] = [encode_row(dict(row._mapping)) for row in rows]
    return contents


@pytest.fixture
async def archive(services, demo, tmp_path) -> Path:
    # Something in every kind of collection: an account, a refresh token, the app's own.
    from auth.roles import Role
    from tests.support import issue_token

    await issue_token(services, Role.ADMIN)
    path = tmp_path / "demo.cgbk"
    with open(path, "wb") as out:  # noqa: ASYNC230
        await create_backup(services.db, services.engine, out, KEY)
    return path


async def test_an_archive_verifies_without_a_database_and_lists_everything(
    archive, services
) -> None:
    manifest = verify_archive(archive, KEY)
    assert manifest["formatVersion"] == 1
    assert manifest["sqlMigrationRevision"]
    assert "caregraphVersion" in manifest and "dataMigrationVersion" in manifest
    collections = manifest["mongodb"]["collections"]
    for name in ("patients", "doctors", "appointments", "appointment_slots", "users"):
        assert collections[name]["count"] == await services.db[name].count_documents({})
        assert len(collections[name]["sha256"]) == 64
    bills = manifest["sql"]["tables"]["bills"]["count"]
    assert bills == await services.data_sources().billing.count() > 0
    # The archive is encrypted: no patient name appears in it.
    patient = await services.db["patients"].find_one()
    assert patient["familyName"].encode() not in archive.read_bytes()


@pytest.mark.parametrize("target_sql", ["sqlite", "postgresql"])
async def test_restore_into_fresh_databases_is_identical(
    archive, services, mongo_uri, tmp_path, target_sql
) -> None:
    source_mongo = await mongo_contents(services.db)
    source_sql = await sql_contents(services.engine)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    target_db = client[f"restore_{uuid.uuid4().hex[:10]}"]
    try:
        if target_sql == "postgresql":
            async with fresh_postgres_database() as url:
                engine = create_engine(url)
                await restore_backup(archive, KEY, target_db, engine)
                assert await sql_contents(engine) == source_sql
                await engine.dispose()
        else:
            engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'restored.sqlite3'}")
            await restore_backup(archive, KEY, target_db, engine)
            assert await sql_contents(engine) == source_sql
            await engine.dispose()
        restored = await mongo_contents(target_db)
        assert restored.keys() == source_mongo.keys()
        for name, documents in source_mongo.items():
            assert restored[name] == documents, name
        # Indexes came back too (the double-booking rule lives in one).
        indexes = await target_db["appointment_slots"].index_information()
        assert indexes["doctor_slot"]["unique"] is True
    finally:
        await client.drop_database(target_db.name)
        await client.close()


@pytest.fixture(scope="module")
async def small_archive(mongo_uri, tmp_path_factory) -> bytes:
    """An archive of a small made-up database (several chunks), made once per module:
    the refusal tests need a valid archive to damage, not the demo data."""
    from datetime import UTC, datetime

    from datasources.billing_tables import bills
    from datasources.sql import migrate

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    db = client[f"small_{uuid.uuid4().hex[:10]}"]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('small')}/b.sqlite3")
    try:
        await db["notes"].insert_many([{"n": i, "text": "x" * 500} for i in range(400)])
        await migrate(engine)
        async with engine.begin() as connection:
            await connection.execute(
                bills.insert(),
                [
                    {
                        "patient_id": "p" * 24,
                        "disease": "flu",
                        "total_cost_cents": i,
                        "created_at": datetime.now(UTC),
                        "paid": False,
                    }
                    for i in range(20)
                ],
            )
        out = io.BytesIO()
        await create_backup(db, engine, out, KEY)
        return out.getvalue()
    finally:
        await engine.dispose()
        await client.drop_database(db.name)
        await client.close()


def chunks(data: bytes) -> tuple[int, list[tuple[int, int]]]:
    """(offset of the first chunk, [(start, end)] of every chunk, length prefix included)."""
    (header_length,) = struct.unpack(">I", data[len(MAGIC) : len(MAGIC) + 4])
    offset = first = len(MAGIC) + 4 + header_length
    spans = []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        spans.append((offset, offset + 4 + length))
        offset += 4 + length
    return first, spans


def damaged(data: bytes, how: str) -> bytes:
    first, spans = chunks(data)
    assert len(spans) >= 3, "the demo archive spans several chunks"
    if how == "truncated":
        return data[: spans[-1][0]]  # the last chunk is gone
    if how == "truncated mid-chunk":
        return data[: spans[1][0] + 100]
    if how == "edited":
        middle = (spans[1][0] + spans[1][1]) // 2
        return data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1 :]
    if how == "reordered":
        (a0, a1), (b0, b1) = spans[0], spans[1]
        return data[:a0] + data[b0:b1] + data[a0:a1] + data[b1:]
    if how == "header edited":
        return data.replace(b'"chunkSize": 65536', b'"chunkSize": 65535', 1)
    raise AssertionError(how)


REASONS = {
    "truncated": "truncated",
    "truncated mid-chunk": "truncated",
    "edited": "chunk 1 failed authentication",
    "reordered": "chunk 0 failed authentication",
    "header edited": "chunk 0 failed authentication",
}


@pytest.mark.parametrize("how", sorted(REASONS))
async def test_a_damaged_archive_is_refused_and_the_target_untouched(
    small_archive, mongo_uri, tmp_path, how
) -> None:
    good = tmp_path / "good.cgbk"
    good.write_bytes(small_archive)
    assert verify_archive(good, KEY)["mongodb"]["collections"]["notes"]["count"] == 400
    bad = tmp_path / "bad.cgbk"
    bad.write_bytes(damaged(small_archive, how))
    with pytest.raises(ArchiveInvalid, match=REASONS[how]):
        verify_archive(bad, KEY)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    target_db = client[f"untouched_{uuid.uuid4().hex[:10]}"]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'target.sqlite3'}")
    try:
        with pytest.raises(ArchiveInvalid):
            await restore_backup(bad, KEY, target_db, engine)
        assert await target_db.list_collection_names() == []
        async with engine.connect() as connection:
            assert await sql_tables(connection) == []  # not even a schema was created
    finally:
        await engine.dispose()
        await client.drop_database(target_db.name)
        await client.close()


async def test_a_wrong_key_is_named(small_archive, tmp_path) -> None:
    archive = tmp_path / "a.cgbk"
    archive.write_bytes(small_archive)
    with pytest.raises(ArchiveInvalid, match="wrong backup key"):
        verify_archive(archive, OTHER_KEY)


async def test_a_non_empty_target_needs_replace(archive, services) -> None:
    before = await services.db["patients"].count_documents({})
    with pytest.raises(RestoreRefused, match="not empty"):
        await restore_backup(archive, KEY, services.db, services.engine)
    await services.db["patients"].insert_one({"givenName": "Added", "familyName": "Later"})
    await restore_backup(archive, KEY, services.db, services.engine, replace=True)
    assert await services.db["patients"].count_documents({}) == before
    assert await services.db["patients"].find_one({"givenName": "Added"}) is None


def command(argv: list[str], key: bytes, data_dir: Path) -> int:
    parser = argparse.ArgumentParser()
    add_backup_commands(parser.add_subparsers(dest="command"))
    settings = Settings(data_dir=data_dir, ops=OpsSettings(backup_key=key.hex()))
    return run_backup(parser.parse_args(argv), settings)


async def test_the_commands_verify_and_refuse(small_archive, tmp_path, capsys) -> None:
    archive = tmp_path / "a.cgbk"
    archive.write_bytes(small_archive)
    assert command(["backup", "verify", str(archive)], KEY, tmp_path) == 0
    assert "verifies" in capsys.readouterr().out
    bad = tmp_path / "bad.cgbk"
    bad.write_bytes(damaged(small_archive, "edited"))
    assert command(["backup", "verify", str(bad)], KEY, tmp_path) == 2
    assert "REFUSED: chunk 1 failed authentication" in capsys.readouterr().err
    assert command(["backup", "verify", str(archive)], OTHER_KEY, tmp_path) == 2
    assert "wrong backup key" in capsys.readouterr().err


def test_memory_stays_flat_while_writing(tmp_path) -> None:
    """The writer holds at most about one chunk, whatever it has written."""
    from backup.archive import CHUNK_SIZE, ArchiveWriter

    out = io.BytesIO()
    writer = ArchiveWriter(out, KEY)
    for _ in range(2000):
        writer.record(b"D", b"x" * 1000)
        assert len(writer._buffer) <= CHUNK_SIZE
    writer.close()
