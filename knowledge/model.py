"""The knowledge base's records. Frozen: a loaded knowledge base never changes; a new
content version is a new object with a new `version`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class InteractionSeverity(Enum):
    CONTRAINDICATED = "contraindicated"
    MAJOR = "major"
    MODERATE = "moderate"
    MINOR = "minor"


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    url: str


@dataclass(frozen=True)
class DrugClass:
    id: str
    name: str
    source: str


@dataclass(frozen=True)
class AgeBand:
    """A daily maximum for an age range (years, inclusive); `to` None means no upper end."""

    max: float
    source: str
    from_age: int = 0
    to_age: int | None = None

    def applies(self, age: int) -> bool:
        return age >= self.from_age and (self.to_age is None or age <= self.to_age)


@dataclass(frozen=True)
class DoseRange:
    unit: str  # "mg": every mass dose is compared in milligrams
    usual_min: float
    usual_max: float
    max: float
    by_age: tuple[AgeBand, ...] = ()
    note: str | None = None

    def maximum_for(self, age: int | None) -> tuple[float, str | None]:
        """The daily maximum that applies at `age`, and the age band's source if one did."""
        if age is not None:
            for band in self.by_age:
                if band.applies(age):
                    return band.max, band.source
        return self.max, None


@dataclass(frozen=True)
class Drug:
    rxcui: str
    name: str
    atc: str
    classes: frozenset[str]
    brands: tuple[str, ...]
    synonyms: tuple[str, ...]
    forms: tuple[str, ...]
    source: str
    dose: DoseRange | None = None
    # Single-ingredient drugs this product contains (amoxicillin in Augmentin), so an
    # allergy or duplicate on the ingredient is found in the combination too.
    ingredients: frozenset[str] = frozenset()

    @property
    def components(self) -> frozenset[str]:
        return self.ingredients | {self.rxcui}


@dataclass(frozen=True)
class DrugSet:
    """A rule's side: members of any listed class, or any listed drug (by RxCUI)."""

    classes: frozenset[str] = frozenset()
    drugs: frozenset[str] = frozenset()

    def contains(self, drug: Drug) -> bool:
        return bool(self.classes & drug.classes) or bool(self.drugs & drug.components)


@dataclass(frozen=True)
class Interaction:
    id: str
    a: DrugSet
    b: DrugSet
    severity: InteractionSeverity
    mechanism: str
    effect: str
    management: str
    source: str
    suggestions: tuple[str, ...] = ()  # RxCUIs of alternatives
    onc_high_priority: bool = False

    def applies(self, first: Drug, second: Drug) -> bool:
        return (self.a.contains(first) and self.b.contains(second)) or (
            self.a.contains(second) and self.b.contains(first)
        )


@dataclass(frozen=True)
class CrossReactivity:
    classes: frozenset[str]
    note: str
    source: str


@dataclass(frozen=True)
class AllergyClass:
    id: str
    name: str
    synonyms: tuple[str, ...]
    members: DrugSet
    cross_reactive: tuple[CrossReactivity, ...]
    source: str
    note: str | None = None


@dataclass(frozen=True)
class Allergen:
    """A non-drug allergen (latex, peanut): coded, and never matches a drug."""

    id: str
    name: str
    synonyms: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class ConditionConcept:
    code: str  # ICD-10-CM with its dot, e.g. "N18.4"
    display: str
    synonyms: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Icd10Range:
    """An inclusive range of ICD-10-CM codes compared by prefix: "N18.4-N18.6" holds
    N18.4, N18.5, N18.6 and all their children; "I50" holds every I50.x code."""

    low: str
    high: str

    @classmethod
    def parse(cls, text: str) -> Icd10Range:
        low, _, high = text.partition("-")
        return cls(compact_icd10(low), compact_icd10(high or low))

    def contains(self, code: str) -> bool:
        compact = compact_icd10(code)
        return compact[: len(self.low)] >= self.low and compact[: len(self.high)] <= self.high

    def __str__(self) -> str:
        return self.low if self.low == self.high else f"{self.low}-{self.high}"


def compact_icd10(code: str) -> str:
    return code.replace(".", "").strip().upper()


@dataclass(frozen=True)
class Contraindication:
    id: str
    drugs: DrugSet
    ranges: tuple[Icd10Range, ...]
    severity: InteractionSeverity
    effect: str
    management: str
    source: str
    suggestions: tuple[str, ...] = ()

    def matches_condition(self, code: str) -> bool:
        return any(r.contains(code) for r in self.ranges)


@dataclass(frozen=True)
class DuplicateGroup:
    id: str
    name: str
    atc_prefixes: tuple[str, ...]
    source: str

    def contains(self, drug: Drug) -> bool:
        return drug.atc.startswith(self.atc_prefixes)


@dataclass(frozen=True)
class RuleCounts:
    drugs: int
    classes: int
    interactions: int
    onc_interactions: int
    allergy_classes: int
    contraindications: int
    duplicate_groups: int
    dose_ranges: int
    conditions: int
    allergens: int

    @property
    def rules(self) -> int:
        return (
            self.interactions
            + self.allergy_classes
            + self.contraindications
            + self.duplicate_groups
            + self.dose_ranges
        )


@dataclass(frozen=True)
class AllergyConcept:
    """What a recorded allergy refers to: a drug class, one substance, or a non-drug allergen."""

    kind: str  # "CLASS" | "SUBSTANCE" | "ALLERGEN"
    code: str  # allergy class id, RxCUI or allergen id
    display: str
