"""What the safety check reads (a patient snapshot and a draft prescription) and what it
returns (alerts). Plain frozen values: no database types, so the check stays pure and
tests build snapshots directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import Enum


class AlertKind(Enum):
    ALLERGY = "ALLERGY"
    INTERACTION = "INTERACTION"
    CONTRAINDICATION = "CONTRAINDICATION"
    DUPLICATE_THERAPY = "DUPLICATE_THERAPY"
    DOSE_RANGE = "DOSE_RANGE"
    UNCODED_ENTRY = "UNCODED_ENTRY"


class AlertSeverity(Enum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {AlertSeverity.INFO: 1, AlertSeverity.WARNING: 2, AlertSeverity.CRITICAL: 3}


class AllergySeverity(Enum):
    MILD = "MILD"
    MODERATE = "MODERATE"
    SEVERE = "SEVERE"
    ANAPHYLAXIS = "ANAPHYLAXIS"


class AllergyStatus(Enum):
    ACTIVE = "ACTIVE"
    RESOLVED = "RESOLVED"


@dataclass(frozen=True)
class CodedDrug:
    """A drug as recorded: `text` is what was typed; `rxcui` None means it did not map."""

    text: str
    rxcui: str | None = None
    atc: str | None = None
    display: str | None = None

    @property
    def coded(self) -> bool:
        return self.rxcui is not None

    @property
    def label(self) -> str:
        return self.display or self.text


@dataclass(frozen=True)
class ConditionRecord:
    text: str
    code: str | None = None  # ICD-10-CM
    display: str | None = None

    @property
    def coded(self) -> bool:
        return self.code is not None

    @property
    def label(self) -> str:
        return f"{self.display} ({self.code})" if self.code else self.text


@dataclass(frozen=True)
class AllergyRecord:
    text: str
    kind: str | None = None  # "CLASS" | "SUBSTANCE" | "ALLERGEN"; None: uncoded
    code: str | None = None
    display: str | None = None
    reaction: str | None = None
    severity: AllergySeverity | None = None
    status: AllergyStatus = AllergyStatus.ACTIVE

    @property
    def coded(self) -> bool:
        return self.code is not None

    @property
    def label(self) -> str:
        return self.display or self.text


@dataclass(frozen=True)
class MedicationRecord:
    """Another prescription of the patient's."""

    id: str
    drug: CodedDrug
    start: date
    end: date | None
    status: str  # ACTIVE | STOPPED | COMPLETED
    verification: str | None = None  # PENDING_REVIEW | VERIFIED | REJECTED | DISPENSED

    def overlaps(self, start: date, end: date | None) -> bool:
        """Counts against a new prescription for [start, end]: still active, not refused by
        the pharmacy, and its dates meet the new one's (an expired course does not)."""
        if self.status != "ACTIVE" or self.verification == "REJECTED":
            return False
        starts_in_time = end is None or self.start <= end
        not_ended = self.end is None or self.end >= start
        return starts_in_time and not_ended


@dataclass(frozen=True)
class Snapshot:
    age: int | None = None
    sex: str | None = None
    pregnant: bool | None = None
    conditions: tuple[ConditionRecord, ...] = ()
    allergies: tuple[AllergyRecord, ...] = ()
    medications: tuple[MedicationRecord, ...] = ()


@dataclass(frozen=True)
class Draft:
    drug: CodedDrug
    start: date
    end: date | None = None
    dose_value: float | None = None
    dose_unit: str | None = None  # DosageUnit value: MG, MCG, G, ...
    frequency: str | None = None  # Frequency value
    # The prescription being re-checked, when it already exists: never its own duplicate.
    prescription_id: str | None = None


@dataclass(frozen=True)
class Evidence:
    """What in the record triggered an alert."""

    kind: str  # ALLERGY | CONDITION | PRESCRIPTION | DRAFT | PATIENT
    display: str
    id: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Suggestion:
    label: str
    rxcui: str | None = None
    display: str | None = None


@dataclass(frozen=True)
class Alert:
    id: str  # stable for the same rule and evidence: what an override acknowledges
    kind: AlertKind
    severity: AlertSeverity
    summary: str  # at most 140 characters (CDS Hooks card summary)
    detail: str
    rule_id: str
    source: str
    source_url: str | None = None
    evidence: tuple[Evidence, ...] = ()
    suggestions: tuple[Suggestion, ...] = field(default=())
