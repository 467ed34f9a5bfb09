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
from datasources.audit_trail import AuditTrail
from datasources.emergency_access import EmergencyAccess
from datasources.integrity_alarms import AlarmReview
from datasources.loaders import Loaders
from datasources.redis.report_cache import CacheOutcome
from datasources.report_service import Reports
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
    # the unscoped stores, which never sit on the context themselves. So are the
    # services below: each is built for `principal` and serves only what it may have.
    accounts: AccountService
    directory: Directory
    principal: Principal | None = None
    # Why a presented token was refused (expired, revoked, ...), for the error message.
    auth_error: str | None = None
    # The reports, at the caller's disclosure level, through the shared cache.
    reports: Reports | None = None
    # The prepared trusted document this request runs, if any (persisted/): its AST
    # was parsed and validated once, at start.
    trusted_document: TrustedDocument | None = None
    # Data-integrity alarms, for the ADMIN `integrityAlarms` query.
    integrity_alarms: AlarmReview | None = None
    # Medication safety: the knowledge base (process-wide) and the checks, scoped to
    # `principal` like `sources`.
    knowledge: KnowledgeBase | None = None
    safety: SafetyService | None = None
    # PHI reads and denied attempts of this request, written as audit records once,
    # before the response leaves (audit/buffer.py; None with auditing off).
    audit: AuditBuffer | None = None
    # Reading the audit log, and break-glass access (None with the PHI safeguards off).
    audit_trail: AuditTrail | None = None
    emergency: EmergencyAccess | None = None
    # Created per request: a loader's cache must never outlive the caller it served.
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders(self.sources)

    @property
    def report_outcomes(self) -> list[CacheOutcome]:
        """Which reports this request served from the cache, for the response's extensions."""
        return self.reports.outcomes if self.reports is not None else []

    @property
    def client_ip(self) -> str:
        return self.request.client.host if self.request.client else "unknown"
