"""The long-lived clients one process shares: MongoDB, the SQL engine, Redis.

`Services.open(settings)` starts whatever the settings leave to the embedded defaults
(the MongoDB child process), connects, ensures indexes and runs SQL migrations;
`close()` undoes it in reverse order, the database process last.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import redis.asyncio as redis
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from auth.tokens import TokenService, load_signing_key
from datasources import DataSources
from datasources.cache import create_redis
from datasources.generation_cache import GenerationCache
from datasources.mongo import create_client, ensure_indexes
from datasources.report_cache import ReportCache
from datasources.reports import ReportStore
from datasources.safety import CheckCounters, SafetyService
from datasources.scope import AccessScope
from datasources.sql import create_engine, migrate
from knowledge import KnowledgeBase, load_knowledge, load_shipped
from runtime.embedded_mongo import EmbeddedMongo
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
    knowledge: KnowledgeBase = field(default_factory=load_shipped)
    safety_counters: CheckCounters = field(default_factory=CheckCounters)
    # Counts and related-patient sets, valid for one write generation (process-wide).
    derived_cache: GenerationCache = field(init=False)

    def __post_init__(self) -> None:
        self.derived_cache = GenerationCache(self.report_cache)

    @classmethod
    async def open(cls, settings: Settings, *, mongo_event_listeners: list | None = None):
        # First: a broken knowledge file stops the start, naming the file, before any
        # server is started.
        knowledge = (
            load_knowledge(settings.knowledge_dir) if settings.knowledge_dir else load_shipped()
        )
        embedded = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.data_dir / "mongodb")
            # Started from this (the main) thread on purpose: the child's parent-death
            # signal follows the spawning thread, and a pool thread may exit early.
            uri = embedded.start()
        try:
            client = create_client(uri, settings, event_listeners=mongo_event_listeners or [])
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
        return cls(
            settings,
            client,
            db,
            engine,
            redis_client,
            tokens,
            ReportStore(db, engine),
            ReportCache(redis_client, settings.report_cache_ttl_s),
            embedded,
            knowledge=knowledge,
        )

    def data_sources(self, scope: AccessScope | None = None) -> DataSources:
        return DataSources.build(
            self.db,
            self.engine,
            scope or AccessScope.system(),
            on_change=self.report_cache.invalidate,
            cache=self.derived_cache,
        )

    def safety(self, scope: AccessScope | None = None) -> SafetyService:
        """Medication safety checks that read what `scope` allows."""
        return SafetyService(
            self.db, scope or AccessScope.system(), self.redis, self.knowledge, self.safety_counters
        )

    async def close(self) -> None:
        await self.redis.aclose()
        await self.engine.dispose()
        await self.mongo_client.close()
        if self.embedded_mongo is not None:
            await asyncio.to_thread(self.embedded_mongo.stop)
