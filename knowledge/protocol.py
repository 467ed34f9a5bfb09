"""The one interface the safety check and the API use to reach medication knowledge.

The shipped JSON files implement it (loader.ShippedKnowledgeBase). A hospital with a
licensed source (First Databank, Medi-Span, a national drug database behind an API)
implements the same methods over that source, preloaded or cached, since `check`
calls them synchronously and must stay free of I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from knowledge.model import (
    AllergyClass,
    AllergyConcept,
    ConditionConcept,
    Contraindication,
    Drug,
    DrugClass,
    DuplicateGroup,
    Interaction,
    RuleCounts,
    Source,
)


@runtime_checkable
class KnowledgeBase(Protocol):
    @property
    def version(self) -> str:
        """Changes whenever any content changes: part of every cached result's key."""
        ...

    @property
    def sources(self) -> Sequence[Source]: ...

    def counts(self) -> RuleCounts: ...

    def source(self, source_id: str) -> Source | None: ...

    def drug(self, rxcui: str) -> Drug | None: ...

    def drug_class(self, class_id: str) -> DrugClass | None: ...

    def find_drug(self, text: str) -> Drug | None:
        """The drug a free-text name, brand or synonym means, or None."""
        ...

    def condition(self, code: str) -> ConditionConcept | None: ...

    def find_condition(self, text: str) -> ConditionConcept | None: ...

    def find_allergy(self, text: str) -> AllergyConcept | None: ...

    def allergy_class(self, class_id: str) -> AllergyClass | None: ...

    def allergy_classes_containing(self, drug: Drug) -> Sequence[AllergyClass]: ...

    def interactions_between(self, first: Drug, second: Drug) -> Sequence[Interaction]: ...

    def contraindications_for(self, drug: Drug) -> Sequence[Contraindication]: ...

    def duplicate_groups_for(self, drug: Drug) -> Sequence[DuplicateGroup]: ...
