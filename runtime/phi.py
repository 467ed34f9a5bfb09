"""Opening the PHI safeguards a process shares: the audit log (with its key from
settings or the data folder), the bulk-export guard and their indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from audit.keys import load_audit_key
from datasources.audit_log import AuditLog
from datasources.emergency import EmergencyGrantStore
from datasources.phi_guard import BulkExportGuard

if TYPE_CHECKING:
    from runtime.services import Services

__all__ = ["AuditLog", "BulkExportGuard", "open_phi_safeguards"]


async def open_phi_safeguards(services: Services) -> None:
    settings = services.settings
    log = AuditLog(services.db, load_audit_key(settings.audit_key, settings.data_dir))
    await log.ensure_indexes()
    await EmergencyGrantStore(services.db).ensure_indexes()
    services.audit_log = log
    services.phi_guard = BulkExportGuard(
        services.redis,
        budgets=dict(settings.phi_read_budgets),
        window_s=settings.phi_read_window_s,
    )
