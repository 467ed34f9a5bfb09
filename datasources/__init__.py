"""Access to MongoDB, SQL billing and Redis, and the per-request dataloaders."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.appointments import AppointmentStore
from datasources.billing import BillingRepository
from datasources.documents import ChangeHook, Document
from datasources.encryption import FieldEncryptor
from datasources.generation_cache import GenerationCache
from datasources.people import DoctorStore, PatientStore
from datasources.prescriptions import PrescriptionStore
from datasources.scope import AccessScope


@dataclass(frozen=True)
class DataSources:
    patients: PatientStore
    doctors: DoctorStore
    appointments: AppointmentStore
    prescriptions: PrescriptionStore
    billing: BillingRepository

    @classmethod
    def build(
        cls,
        db: AsyncDatabase[Document],
        engine: AsyncEngine,
        scope: AccessScope,
        on_change: ChangeHook | None = None,
        cache: GenerationCache | None = None,
        encryptor: FieldEncryptor | None = None,
    ) -> DataSources:
        """Stores that see only what `scope` allows (AccessScope.system(): everything).
        `on_change` runs after every committed write that reports or `cache` (counts,
        a doctor's related patients) depend on."""
        scope.cache = cache
        sources = cls(
            patients=PatientStore(db, scope, on_change),
            doctors=DoctorStore(db, scope, on_change),
            appointments=AppointmentStore(db, scope, on_change),
            prescriptions=PrescriptionStore(db, scope, on_change),
            billing=BillingRepository(engine, scope, on_change),
        )
        # PHI fields are encrypted on write (datasources/encryption.py); reads decrypt.
        sources.patients.encryptor = sources.appointments.encryptor = encryptor
        return sources
