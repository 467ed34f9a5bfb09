"""Enumerations shared across aggregates. Values are what MongoDB stores."""

from __future__ import annotations

from enum import Enum

import strawberry


@strawberry.enum(description="Administrative sex as recorded at registration.")
class Sex(Enum):
    FEMALE = "FEMALE"
    MALE = "MALE"
    OTHER = "OTHER"
    UNKNOWN = "UNKNOWN"


@strawberry.enum
class DayOfWeek(Enum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


@strawberry.enum
class Specialty(Enum):
    CARDIOLOGY = "CARDIOLOGY"
    DERMATOLOGY = "DERMATOLOGY"
    ENDOCRINOLOGY = "ENDOCRINOLOGY"
    GASTROENTEROLOGY = "GASTROENTEROLOGY"
    GENERAL_PRACTICE = "GENERAL_PRACTICE"
    NEUROLOGY = "NEUROLOGY"
    ONCOLOGY = "ONCOLOGY"
    ORTHOPEDICS = "ORTHOPEDICS"
    PEDIATRICS = "PEDIATRICS"
    PSYCHIATRY = "PSYCHIATRY"
    PULMONOLOGY = "PULMONOLOGY"
    RHEUMATOLOGY = "RHEUMATOLOGY"


@strawberry.enum(
    description="SCHEDULED -> COMPLETED (once it has started) or SCHEDULED -> CANCELLED; "
    "nothing else, and never back."
)
class AppointmentStatus(Enum):
    SCHEDULED = "SCHEDULED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


@strawberry.enum(description="ACTIVE -> STOPPED or ACTIVE -> COMPLETED; never back.")
class PrescriptionStatus(Enum):
    ACTIVE = "ACTIVE"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"


@strawberry.enum
class DosageUnit(Enum):
    MG = "MG"
    MCG = "MCG"
    G = "G"
    ML = "ML"
    IU = "IU"
    UNIT = "UNIT"
    TABLET = "TABLET"
    CAPSULE = "CAPSULE"
    DROP = "DROP"
    PUFF = "PUFF"
    PATCH = "PATCH"


@strawberry.enum
class Frequency(Enum):
    ONCE = "ONCE"
    ONCE_DAILY = "ONCE_DAILY"
    TWICE_DAILY = "TWICE_DAILY"
    THREE_TIMES_DAILY = "THREE_TIMES_DAILY"
    FOUR_TIMES_DAILY = "FOUR_TIMES_DAILY"
    EVERY_4_HOURS = "EVERY_4_HOURS"
    EVERY_6_HOURS = "EVERY_6_HOURS"
    EVERY_8_HOURS = "EVERY_8_HOURS"
    EVERY_12_HOURS = "EVERY_12_HOURS"
    WEEKLY = "WEEKLY"
    AS_NEEDED = "AS_NEEDED"
