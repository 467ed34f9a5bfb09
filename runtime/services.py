"""The long-lived clients one process shares: MongoDB, the SQL engine, Redis.

`Services.open(settings)` starts whatever the settings leave to the embedded defaults
(the MongoDB child process), connects, ensures indexes and runs SQL migrations;
`close()` undoes it in reverse order, the database process last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as redis
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from accounts.directory import Directory
from accounts.registration import RegistrationService
from accounts.service import AccountService
from accounts.sessions import SessionService
from auth.fallback_budget import FallbackBudget
from auth.roles import Principal
from auth.throttle import ACCOUNT_WINDOW_MS
from auth.tokens import TokenService, load_signing_key
from datasources import DataSources
from datasources.audit_trail import AuditTrail
from datasources.documents import Document
from datasources.emergency import EmergencyGrantStore
from datasources.emergency_access import EmergencyAccess
from datasources.generation_cache import GenerationCache
from datasources.idempotency_store import IdempotencyStore
from datasources.integrity_alarms import AlarmReview, IntegrityAlarmStore
from datasources.mongo import create_client, ensure_indexes
from datasources.outbox import Outbox
from datasources.redis.client import create_redis
from datasources.redis.report_cache import ReportCache
from datasources.redis.safety_cache import SafetyCache
from datasources.redis.throttle import LoginThrottle, RegistrationThrottle
from datasources.registrations import PendingRegistrations
from datasources.report_service import Reports
from datasources.reports import ReportStore
from datasources.safety import CheckCounters, SafetyService
from datasources.scope import AccessScope
from datasources.sql import create_engine, migrate
from datasources.users import RefreshTokenStore, UserStore
from knowledge import KnowledgeBase, load_knowledge, load_shipped
from observability import metrics
from runtime.dependencies import DependencyStates
from runtime.embedded_mongo import EmbeddedMongo
from runtime.idempotency import IdempotentRequests
from runtime.mongo_gate import GatedMongoClient, MongoGate
from runtime.mongo_supervisor import MongoSupervisor
from runtime.phi import (
    AuditLog,
    BulkExportGuard,
    FieldEncryptor,
    close_phi_safeguards,
    open_phi_safeguards,
    phi_client_options,
)
from runtime.probes import dependency_probes, install_sql_fast_fail
from runtime.request_guard import request_budget_s
from settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    mongo_client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
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

    # Supervises embedded_mongo: restarts it on its data folder if it dies.
    mongo_supervisor: MongoSupervisor | None = None
    # Per-dependency circuits and the probe that closes them (runtime/dependencies.py).
    dependencies: DependencyStates | None = None
    # The login throttle's per-process budget while Redis is down (auth/fallback_budget.py).
    throttle_fallback: FallbackBudget | None = None
    # Idempotency-Key handling (runtime/idempotency.py).
    idempotency: IdempotentRequests | None = None

    def __post_init__(self) -> None:
        self.derived_cache = GenerationCache(self.report_cache)

    # PHI safeguards: the audit log (datasources/audit_log.py) and the bulk-export
    # guard (datasources/redis/phi_guard.py).
    audit_log: AuditLog | None = None
    phi_guard: BulkExportGuard | None = None
    # Encrypts PHI fields on write; None with field encryption off.
    encryptor: FieldEncryptor | None = None
    plain_mongo_client: AsyncMongoClient[Document] | None = None  # no auto-decryption: key vault

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        mongo_event_listeners: Sequence[monitoring.CommandListener] | None = None,
    ) -> Services:
        # First: a broken knowledge file stops the start, naming the file, before any
        # server is started.
        knowledge = (
            load_knowledge(settings.knowledge_dir) if settings.knowledge_dir else load_shipped()
        )
        embedded = supervisor = None
        uri = settings.mongodb_uri
        if uri is None:
            embedded = EmbeddedMongo(settings.data_dir / "mongodb")
            # Started from the supervisor's own long-lived thread: the child's
            # parent-death signal follows the spawning thread.
            supervisor = MongoSupervisor(embedded)
            supervisor.start()
            uri = embedded.uri
            assert uri is not None
            # Where CLI commands (backup) find the running server: its folder is locked.
            (settings.data_dir / "mongodb.uri").write_text(uri)
        try:
            client = create_client(
                uri,
                settings,
                client_class=GatedMongoClient,
                event_listeners=[*(mongo_event_listeners or []), metrics.RoundTripCounter()],
                **phi_client_options(settings),
            )
            assert isinstance(client, GatedMongoClient)  # create_client builds client_class
            client.gate = MongoGate(
                per_process=settings.ops.mongodb_concurrency,
                per_request=settings.ops.mongodb_concurrency_per_request,
                wait_s=settings.ops.mongodb_queue_wait_ms / 1000,
            )
            db = client[settings.mongodb_database]
            await ensure_indexes(db)
            engine = create_engine(settings.sqlalchemy_url)
            await migrate(engine)
        except BaseException:
            if supervisor is not None:
                await asyncio.to_thread(supervisor.stop)
            raise
        tokens = TokenService(settings, load_signing_key(settings))
        redis_client = create_redis(settings.redis_url)
        dependencies = DependencyStates(dependency_probes(db, engine, redis_client))
        claims = IdempotencyStore(db)
        await claims.ensure_indexes()
        idempotency = IdempotentRequests(claims, tokens, running_s=request_budget_s(settings))
        install_sql_fast_fail(engine, dependencies["sql"])
        event.listen(engine.sync_engine, "before_cursor_execute", metrics.count_sql_statement)
        dependencies.add_listener(metrics.dependency_changed)
        for name in dependencies.circuits:
            metrics.dependency_changed(name, True)
        dependencies.start()
        if supervisor is not None:
            # The child's death is known at once: refuse fast from this moment on.
            supervisor.on_down = lambda reason: dependencies.mark_down("mongodb", reason)
            supervisor.on_restart = metrics.RESTARTS.inc
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
            knowledge=knowledge,
            mongo_supervisor=supervisor,
            dependencies=dependencies,
            throttle_fallback=FallbackBudget(
                limit=settings.ops.throttle_fallback_per_account,
                window_s=ACCOUNT_WINDOW_MS / 1000,
            ),
            idempotency=idempotency,
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
            cache=self.derived_cache,
            encryptor=self.encryptor,
        )

    def accounts(self) -> AccountService:
        """Account management for one request (its stores are unscoped: see accounts/)."""
        settings = self.settings
        sessions = SessionService(
            users=UserStore(self.db, AccessScope.system()),
            refresh_tokens=RefreshTokenStore(self.db),
            tokens=self.tokens,
            throttle=LoginThrottle(
                self.redis,
                per_account=settings.login_failures_per_account,
                per_ip=settings.login_failures_per_ip,
                fallback=self.throttle_fallback,
            ),
            settings=settings,
        )

        def registration() -> RegistrationService:
            return RegistrationService(
                sessions=sessions,
                records=self.data_sources,
                pending=PendingRegistrations(self.db),
                outbox=Outbox(self.db),
                throttle=RegistrationThrottle(
                    self.redis,
                    per_ip=settings.registrations_per_ip,
                    window_s=settings.registration_window_s,
                ),
                settings=settings,
            )

        return AccountService(
            sessions=sessions,
            registration=registration,
            records=self.data_sources,
            settings=settings,
        )

    def directory(self) -> Directory:
        """Existence and staff names, read unscoped, for one request (accounts/directory.py)."""
        return Directory(UserStore(self.db, AccessScope.system()), self.data_sources)

    def reports_for(self, principal: Principal | None) -> Reports:
        """The reports `principal` may run, at their disclosure level (auth/privacy.py)."""
        return Reports(
            self.reports,
            self.report_cache,
            principal,
            min_group_size=self.settings.report_min_group_size,
        )

    def integrity_alarms(self, principal: Principal | None) -> AlarmReview:
        return AlarmReview(IntegrityAlarmStore(self.db), principal)

    def audit_trail(self, principal: Principal | None) -> AuditTrail | None:
        """Reads of the audit log for `principal`; None with the PHI safeguards off."""
        return None if self.audit_log is None else AuditTrail(self.audit_log, principal)

    def emergency_access(self, principal: Principal | None) -> EmergencyAccess | None:
        """Break-glass access for `principal`; None with the PHI safeguards off."""
        if self.audit_log is None:
            return None
        return EmergencyAccess(EmergencyGrantStore(self.db), principal)

    def safety(self, scope: AccessScope | None = None) -> SafetyService:
        """Medication safety checks that read what `scope` allows."""
        return SafetyService(
            self.db,
            scope or AccessScope.system(),
            SafetyCache(self.redis),
            self.knowledge,
            self.safety_counters,
        )

    async def close(self) -> None:
        await close_phi_safeguards(self)
        if self.dependencies is not None:
            await self.dependencies.stop()
        await self.redis.aclose()
        await self.engine.dispose()
        await self.mongo_client.close()
        if self.mongo_supervisor is not None:
            (self.settings.data_dir / "mongodb.uri").unlink(missing_ok=True)
            await asyncio.to_thread(self.mongo_supervisor.stop)
        elif self.embedded_mongo is not None:
            await asyncio.to_thread(self.embedded_mongo.stop)
