"""The databases a backup command works on, from the same settings as the server.

On embedded defaults the MongoDB data folder is locked by a running server, so the
command connects to that server (its address is in `<data>/mongodb.uri` while it
runs); with no server running it starts the embedded one itself for the command.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.sql import create_engine
from runtime.embedded_mongo import EmbeddedMongo
from settings import Settings

URI_FILE = "mongodb.uri"


def uri_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / URI_FILE


async def _reachable(uri: str) -> bool:
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, serverSelectionTimeoutMS=1000)
    try:
        with pymongo.timeout(2):
            await client.admin.command("ping")
        return True
    except pymongo.errors.PyMongoError:
        return False
    finally:
        await client.close()


@asynccontextmanager
async def backup_stores(
    settings: Settings,
) -> AsyncIterator[tuple[AsyncDatabase[Any], AsyncEngine]]:
    embedded: EmbeddedMongo | None = None
    uri = settings.mongodb_uri
    if uri is None:
        running = uri_file(settings)
        if running.exists() and await _reachable(running.read_text().strip()):
            uri = running.read_text().strip()
        else:
            embedded = EmbeddedMongo(Path(settings.data_dir) / "mongodb")
            uri = embedded.start()
    client = backup_client(uri)
    engine = create_engine(settings.sqlalchemy_url)
    try:
        yield client[settings.mongodb_database], engine
    finally:
        await engine.dispose()
        await client.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def backup_client(uri: str) -> AsyncMongoClient[Any]:
    """A client for long jobs: no timeoutMS (it would bound each cursor's whole life)."""
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)


def services_uri(services: Any) -> str:
    """The MongoDB address a running app uses (configured, or its embedded server)."""
    uri = services.settings.mongodb_uri or (
        services.embedded_mongo.uri if services.embedded_mongo is not None else None
    )
    assert uri is not None, "the app is connected to some MongoDB"
    return str(uri)
