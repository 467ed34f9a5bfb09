"""The per-request context every resolver receives as `info.context`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from accounts.directory import Directory
from accounts.service import AccountService
from audit.buffer import AuditBuffer
from auth.roles import Principal
from datasources import DataSources
from datasources.integrity_alarms import IntegrityAlarmStore
from datasources.loaders import Loaders
from datasources.phi_access import PhiStores
from datasources.redis.report_cache import CacheOutcome, ReportCache
from datasources.reports import ReportStore
from settings import Settings

if TYPE_CHECKING:  # persisted/ imports the schema, which imports this module
    from datasources.safety import SafetyService
    from knowledge.protocol import KnowledgeBase
    from persisted.manifest import TrustedDocument


@dataclass
class Context:
    request: Request
    response: Response
    settings: Settings
    # Scoped to `principal`: every read and write sees only what the caller may see.
    sources: DataSources
    # Account management, and the few unscoped facts other flows need: the only ways to
    # the unscoped stores, which never sit on the context themselves.
    accounts: AccountService
    directory: Directory
    principal: Principal | None = None
    # Why a presented token was refused (expired, revoked, ...), for the error message.
    auth_error: str | None = None
    # Report aggregations and their shared cache (process-wide objects).
    reports: ReportStore | None = None
    report_cache: ReportCache | None = None
    # Which reports this request served from the cache, for the response's extensions.
    report_outcomes: list[CacheOutcome] = field(default_factory=list)
    # The prepared trusted document this request runs, if any (persisted/): its AST
    # was parsed and validated once, at start.
    trusted_document: TrustedDocument | None = None
    # Data-integrity alarms, for the ADMIN `integrityAlarms` query.
    integrity_alarms: IntegrityAlarmStore | None = None
    # Medication safety: the knowledge base (process-wide) and the checks, scoped to
    # `principal` like `sources`.
    knowledge: KnowledgeBase | None = None
    safety: SafetyService | None = None
    # PHI reads and denied attempts of this request, written as audit records once,
    # before the response leaves (audit/buffer.py; None with auditing off).
    audit: AuditBuffer | None = None
    # The audit log and break-glass grants, for the resolvers that read them.
    phi: PhiStores | None = None
    # Created per request: a loader's cache must never outlive the caller it served.
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.sources)

    @property
    def client_ip(self) -> str:
        return self.request.client.host if self.request.client else "unknown"
