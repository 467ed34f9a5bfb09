"""Opening the PHI safeguards a process shares: the audit log (with its key from
settings or the data folder), the bulk-export guard and their indexes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit.keys import load_audit_key
from datasources.audit_log import AuditLog
from datasources.emergency import EmergencyGrantStore
from datasources.encryption import FieldEncryptor, auto_decryption_options
from datasources.kms import key_vault_namespace, load_key_ring
from datasources.mongo import create_client
from datasources.redis.phi_guard import BulkExportGuard

if TYPE_CHECKING:
    from runtime.services import Services
    from settings import Settings

__all__ = [
    "AuditLog",
    "BulkExportGuard",
    "FieldEncryptor",
    "close_phi_safeguards",
    "open_phi_safeguards",
    "phi_client_options",
]


def phi_client_options(settings: Settings) -> dict[str, Any]:
    """Options for the application's MongoDB client: decrypt every reply."""
    if not settings.field_encryption:
        return {}
    ring = load_key_ring(settings)
    return {"auto_encryption_opts": auto_decryption_options(ring, key_vault_namespace(settings))}


async def open_phi_safeguards(services: Services, uri: str) -> None:
    settings = services.settings
    if settings.field_encryption:
        # The key vault is read with a plain client: it holds wrapped keys, not PHI.
        services.plain_mongo_client = create_client(uri, settings)
        services.encryptor = FieldEncryptor.open(
            services.plain_mongo_client, load_key_ring(settings), key_vault_namespace(settings)
        )
        await services.encryptor.ensure_keys()
    log = AuditLog(services.db, load_audit_key(settings.audit_key, settings.data_dir))
    await log.ensure_indexes()
    await EmergencyGrantStore(services.db).ensure_indexes()
    services.audit_log = log
    services.phi_guard = BulkExportGuard(
        services.redis,
        budgets=dict(settings.phi_read_budgets),
        window_s=settings.phi_read_window_s,
    )


async def close_phi_safeguards(services: Services) -> None:
    if services.encryptor is not None:
        await services.encryptor.close()
        services.encryptor = None
    if services.plain_mongo_client is not None:
        await services.plain_mongo_client.close()
        services.plain_mongo_client = None
