"""The long-lived clients one process shares: MongoDB, the SQL engine, Redis.

`Services.open(settings)` starts whatever the settings leave to the embedded defaults
(the MongoDB child process), connects, ensures indexes and runs SQL migrations;
`close()` undoes it in reverse order, the database process last.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as redis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tokens import TokenService, load_signing_key
from datasources import DataSources
from datasources.cache import create_redis
from datasources.mongo import create_client, ensure_indexes
from datasources.report_cache import ReportCache
from datasources.reports import ReportStore
from datasources.scope import AccessScope
from datasources.sql import create_engine, migrate
from runtime.embedded_mongo import EmbeddedMongo
from runtime.phi import (
    AuditLog,
    BulkExportGuard,
    FieldEncryptor,
    close_phi_safeguards,
    open_phi_safeguards,
    phi_client_options,
)
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    mongo_client: AsyncMongoClient
    db: AsyncDatabase
    engine: AsyncEngine
    redis: redis.Redis
    tokens: TokenService
    reports: ReportStore
    report_cache: ReportCache
    embedded_mongo: EmbeddedMongo | None = None
    # PHI safeguards: the audit log and the bulk-export guard (datasources/phi_*.py).
    audit_log: AuditLog | None = None
    phi_guard: BulkExportGuard | None = None
    # Encrypts PHI fields on write; None with field encryption off.
    encryptor: FieldEncryptor | None = None
    plain_mongo_client: AsyncMongoClient | None = None  # no auto-decryption: key vault

    @classmethod
    async def open(cls, settings: Settings, *, mongo_event_listeners: list | None = None):
        embedded = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.data_dir / "mongodb")
            # Started from this (the main) thread on purpose: the child's parent-death
            # signal follows the spawning thread, and a pool thread may exit early.
            uri = embedded.start()
        try:
            client = create_client(
                uri,
                settings,
                event_listeners=mongo_event_listeners or [],
                **phi_client_options(settings),
            )
            db = client[settings.mongodb_database]
            await ensure_indexes(db)
            engine = create_engine(settings.sqlalchemy_url)
            await migrate(engine)
        except BaseException:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
            raise
        tokens = TokenService(settings, load_signing_key(settings))
        redis_client = create_redis(settings.redis_url)
        services = cls(
            settings,
            client,
            db,
            engine,
            redis_client,
            tokens,
            ReportStore(db, engine),
            ReportCache(redis_client, settings.report_cache_ttl_s),
            embedded,
        )
        try:
            await open_phi_safeguards(services, uri)
        except BaseException:
            await services.close()
            raise
        return services

    def data_sources(self, scope: AccessScope | None = None) -> DataSources:
        return DataSources.build(
            self.db,
            self.engine,
            scope or AccessScope.system(),
            on_change=self.report_cache.invalidate,
            encryptor=self.encryptor,
        )

    async def close(self) -> None:
        await close_phi_safeguards(self)
        await self.redis.aclose()
        await self.engine.dispose()
        await self.mongo_client.close()
        if self.embedded_mongo is not None:
            await asyncio.to_thread(self.embedded_mongo.stop)
