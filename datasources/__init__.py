"""Access to MongoDB, SQL billing and Redis, and the per-request dataloaders."""

from __future__ import annotations

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from datasources.appointments import AppointmentStore
from datasources.billing import BillingRepository
from datasources.people import DoctorStore, PatientStore
from datasources.prescriptions import PrescriptionStore


@dataclass(frozen=True)
class DataSources:
    patients: PatientStore
    doctors: DoctorStore
    appointments: AppointmentStore
    prescriptions: PrescriptionStore
    billing: BillingRepository

    @classmethod
    def build(cls, db: AsyncDatabase, engine: AsyncEngine) -> DataSources:
        return cls(
            patients=PatientStore(db),
            doctors=DoctorStore(db),
            appointments=AppointmentStore(db),
            prescriptions=PrescriptionStore(db),
            billing=BillingRepository(engine),
        )
