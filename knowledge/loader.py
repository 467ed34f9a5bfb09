"""Load and validate the shipped knowledge files into an immutable knowledge base.

Validation runs once, at start (and in `caregraph knowledge check`): a file that does
not parse, an entry without a source, a duplicate code or a rule naming an unknown drug
or class stops the start with a message naming the file and the entry.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from knowledge.model import (
    AgeBand,
    Allergen,
    AllergyClass,
    AllergyConcept,
    ConditionConcept,
    Contraindication,
    CrossReactivity,
    DoseRange,
    Drug,
    DrugClass,
    DrugSet,
    DuplicateGroup,
    Icd10Range,
    Interaction,
    InteractionSeverity,
    RuleCounts,
    Source,
    compact_icd10,
)
from knowledge.text import candidate_terms, normalise_term

DATA_DIR = Path(__file__).parent / "data"
_ATC = re.compile(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$")
_ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")
_SEVERITIES = {s.value: s for s in InteractionSeverity}

Json = dict[str, Any]


class KnowledgeError(Exception):
    """The knowledge files are invalid; `problems` names each file and entry."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in the knowledge base:\n  " + "\n  ".join(problems)
        )


@dataclass
class _Files:
    """Every file's parsed JSON, and the problems found so far."""

    directory: Path
    documents: dict[str, Json] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def entries(self, prefix: str, key: str) -> Iterator[tuple[str, Json]]:
        for name, document in sorted(self.documents.items()):
            if name == prefix + ".json" or (name.startswith(prefix + "_")):
                items = document.get(key)
                if not isinstance(items, list):
                    self.problems.append(f"{name}: expected a list under {key!r}")
                    continue
                for item in items:
                    if isinstance(item, dict):
                        yield name, item
                    else:
                        self.problems.append(f"{name}: an entry under {key!r} is not an object")

    def fail(self, file: str, entry: str, message: str) -> None:
        self.problems.append(f"{file}: {entry}: {message}")


def _read(directory: Path) -> tuple[_Files, str]:
    files = _Files(directory)
    digest = hashlib.sha256()
    paths = sorted(directory.glob("*.json"))
    if not paths:
        files.problems.append(f"{directory}: no knowledge files (*.json)")
    for path in paths:
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            files.problems.append(f"{path.name}: not valid JSON ({error})")
            continue
        if not isinstance(document, dict):
            files.problems.append(f"{path.name}: the top level must be an object")
            continue
        files.documents[path.name] = document
    return files, digest.hexdigest()[:16]


def _text(files: _Files, file: str, entry: str, item: Json, key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        files.fail(file, entry, f"{key!r} must be a non-empty string")
        return ""
    return value


def _strings(files: _Files, file: str, entry: str, item: Json, key: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        files.fail(file, entry, f"{key!r} must be a list of non-empty strings")
        return ()
    return tuple(value)


def _check_source(files: _Files, file: str, entry: str, source: str, known: set[str]) -> None:
    """A source is one or more `<source id>[: locator]` parts separated by ';'."""
    if not source:
        return  # already reported as missing
    for part in source.split(";"):
        source_id = part.split(":", 1)[0].strip()
        if source_id not in known:
            files.fail(
                file, entry, f"source {part.strip()!r} does not start with a known source id"
            )


@dataclass(frozen=True)
class ShippedKnowledgeBase:
    """The default KnowledgeBase: the validated contents of knowledge/data/."""

    version: str
    sources: tuple[Source, ...]
    _sources: MappingProxyType[str, Source]
    _classes: MappingProxyType[str, DrugClass]
    _drugs: MappingProxyType[str, Drug]
    _drug_terms: MappingProxyType[str, str]
    _conditions: MappingProxyType[str, ConditionConcept]
    _condition_terms: MappingProxyType[str, str]
    _allergy_classes: MappingProxyType[str, AllergyClass]
    _allergy_terms: MappingProxyType[str, AllergyConcept]
    _allergens: tuple[Allergen, ...]
    _interactions: tuple[Interaction, ...]
    _contraindications: tuple[Contraindication, ...]
    _duplicates: tuple[DuplicateGroup, ...]

    def counts(self) -> RuleCounts:
        return RuleCounts(
            drugs=len(self._drugs),
            classes=len(self._classes),
            interactions=len(self._interactions),
            onc_interactions=sum(1 for i in self._interactions if i.onc_high_priority),
            allergy_classes=len(self._allergy_classes),
            contraindications=len(self._contraindications),
            duplicate_groups=len(self._duplicates),
            dose_ranges=sum(1 for d in self._drugs.values() if d.dose is not None),
            conditions=len(self._conditions),
            allergens=len(self._allergens),
        )

    def source(self, source_id: str) -> Source | None:
        return self._sources.get(source_id)

    def drug(self, rxcui: str) -> Drug | None:
        return self._drugs.get(rxcui)

    def drug_class(self, class_id: str) -> DrugClass | None:
        return self._classes.get(class_id)

    def find_drug(self, text: str) -> Drug | None:
        for term in candidate_terms(text):
            rxcui = self._drug_terms.get(term)
            if rxcui is not None:
                return self._drugs[rxcui]
        return None

    def condition(self, code: str) -> ConditionConcept | None:
        return self._conditions.get(compact_icd10(code))

    def find_condition(self, text: str) -> ConditionConcept | None:
        by_code = self.condition(text)
        if by_code is not None:
            return by_code
        code = self._condition_terms.get(normalise_term(text))
        return self._conditions[code] if code is not None else None

    def find_allergy(self, text: str) -> AllergyConcept | None:
        for term in candidate_terms(text):
            concept = self._allergy_terms.get(term)
            if concept is not None:
                return concept
        drug = self.find_drug(text)
        return AllergyConcept("SUBSTANCE", drug.rxcui, drug.name) if drug else None

    def allergy_class(self, class_id: str) -> AllergyClass | None:
        return self._allergy_classes.get(class_id)

    def allergy_classes_containing(self, drug: Drug) -> list[AllergyClass]:
        return [c for c in self._allergy_classes.values() if c.members.contains(drug)]

    def interactions_between(self, first: Drug, second: Drug) -> list[Interaction]:
        return [rule for rule in self._interactions if rule.applies(first, second)]

    def contraindications_for(self, drug: Drug) -> list[Contraindication]:
        return [rule for rule in self._contraindications if rule.drugs.contains(drug)]

    def duplicate_groups_for(self, drug: Drug) -> list[DuplicateGroup]:
        return [group for group in self._duplicates if group.contains(drug)]


class _Builder:
    """Turns the parsed files into records, collecting every problem on the way."""

    def __init__(self, files: _Files) -> None:
        self.files = files
        self.source_ids: set[str] = set()
        self.classes: dict[str, DrugClass] = {}
        self.drugs: dict[str, Drug] = {}
        self.drug_names: dict[str, str] = {}  # normalised name -> rxcui

    def sources(self) -> list[Source]:
        result = []
        for file, item in self.files.entries("sources", "sources"):
            entry = str(item.get("id"))
            source = Source(
                id=_text(self.files, file, entry, item, "id"),
                name=_text(self.files, file, entry, item, "name"),
                url=_text(self.files, file, entry, item, "url"),
            )
            if source.id in self.source_ids:
                self.files.fail(file, entry, "duplicate source id")
            self.source_ids.add(source.id)
            result.append(source)
        return result

    def source_of(self, file: str, entry: str, item: Json) -> str:
        source = _text(self.files, file, entry, item, "source")
        _check_source(self.files, file, entry, source, self.source_ids)
        return source

    def drug_classes(self) -> None:
        for file, item in self.files.entries("classes", "classes"):
            entry = f"class {item.get('id')!r}"
            drug_class = DrugClass(
                id=_text(self.files, file, entry, item, "id"),
                name=_text(self.files, file, entry, item, "name"),
                source=self.source_of(file, entry, item),
            )
            if drug_class.id in self.classes:
                self.files.fail(file, entry, "duplicate class id")
            self.classes[drug_class.id] = drug_class

    def known_classes(self, file: str, entry: str, names: Sequence[str]) -> frozenset[str]:
        for name in names:
            if name not in self.classes:
                self.files.fail(file, entry, f"unknown class {name!r}")
        return frozenset(names)

    def dose(self, file: str, entry: str, item: Json) -> DoseRange | None:
        raw = item.get("dose")
        if raw is None:
            return None
        try:
            low, high = (float(v) for v in raw["usual"])
            bands = tuple(
                AgeBand(
                    max=float(band["max"]),
                    from_age=int(band.get("from", 0)),
                    to_age=int(band["to"]) if "to" in band else None,
                    source=band["source"],
                )
                for band in raw.get("byAge", [])
            )
            dose = DoseRange(
                unit=raw["unit"],
                usual_min=low,
                usual_max=high,
                max=float(raw["max"]),
                by_age=bands,
                note=raw.get("note"),
            )
        except (KeyError, TypeError, ValueError) as error:
            self.files.fail(file, entry, f"dose is malformed ({error!r})")
            return None
        if dose.unit != "mg":
            self.files.fail(file, entry, "dose unit must be 'mg' (daily doses in milligrams)")
        if not 0 < dose.usual_min <= dose.usual_max <= dose.max:
            self.files.fail(file, entry, "dose must satisfy 0 < usual min <= usual max <= max")
        for band in dose.by_age:
            _check_source(self.files, file, entry, band.source, self.source_ids)
        return dose

    def drugs_from_files(self) -> None:
        pending_ingredients: list[tuple[str, str, Drug, tuple[str, ...]]] = []
        for file, item in self.files.entries("drugs", "drugs"):
            entry = f"drug {item.get('name')!r}"
            rxcui = _text(self.files, file, entry, item, "rxcui")
            if rxcui and not rxcui.isdigit():
                self.files.fail(file, entry, "rxcui must be digits")
            atc = _text(self.files, file, entry, item, "atc")
            if atc and not _ATC.match(atc):
                self.files.fail(file, entry, f"ATC code {atc!r} is not 7 characters like J01CA04")
            drug = Drug(
                rxcui=rxcui,
                name=_text(self.files, file, entry, item, "name"),
                atc=atc,
                classes=self.known_classes(
                    file, entry, _strings(self.files, file, entry, item, "classes")
                ),
                brands=_strings(self.files, file, entry, item, "brands"),
                synonyms=_strings(self.files, file, entry, item, "synonyms"),
                forms=_strings(self.files, file, entry, item, "forms"),
                source=self.source_of(file, entry, item),
                dose=self.dose(file, entry, item),
            )
            if rxcui in self.drugs:
                self.files.fail(file, entry, f"duplicate rxcui {rxcui}")
            self.drugs[rxcui] = drug
            ingredients = _strings(self.files, file, entry, item, "ingredients")
            if ingredients:
                pending_ingredients.append((file, entry, drug, ingredients))
        for file, entry, drug, ingredients in pending_ingredients:
            for rxcui in ingredients:
                if rxcui not in self.drugs:
                    self.files.fail(file, entry, f"unknown ingredient rxcui {rxcui}")
            self.drugs[drug.rxcui] = Drug(
                **{**drug.__dict__, "ingredients": frozenset(ingredients)}
            )

    def drug_terms(self) -> dict[str, str]:
        terms: dict[str, str] = {}
        for drug in self.drugs.values():
            for text in (drug.name, *drug.brands, *drug.synonyms):
                term = normalise_term(text)
                owner = terms.setdefault(term, drug.rxcui)
                if owner != drug.rxcui:
                    self.files.fail(
                        "drugs", f"drug {drug.name!r}", f"term {text!r} also names rxcui {owner}"
                    )
            self.drug_names[normalise_term(drug.name)] = drug.rxcui
        return terms

    def drug_set(self, file: str, entry: str, raw: object) -> DrugSet:
        if not isinstance(raw, dict) or not (raw.get("classes") or raw.get("drugs")):
            self.files.fail(file, entry, "a rule side needs 'classes' or 'drugs'")
            return DrugSet()
        classes = self.known_classes(file, entry, raw.get("classes", []))
        return DrugSet(
            classes=classes, drugs=frozenset(self.rxcuis(file, entry, raw.get("drugs", [])))
        )

    def rxcuis(self, file: str, entry: str, names: Sequence[str]) -> tuple[str, ...]:
        found = []
        for name in names:
            rxcui = self.drug_names.get(normalise_term(name))
            if rxcui is None:
                self.files.fail(file, entry, f"unknown drug {name!r}")
            else:
                found.append(rxcui)
        return tuple(found)

    def severity(self, file: str, entry: str, item: Json) -> InteractionSeverity:
        value = item.get("severity")
        if value not in _SEVERITIES:
            self.files.fail(file, entry, f"severity must be one of {sorted(_SEVERITIES)}")
            return InteractionSeverity.MINOR
        return _SEVERITIES[value]

    def interactions(self) -> list[Interaction]:
        result, seen = [], set()
        for file, item in self.files.entries("interactions", "interactions"):
            entry = f"interaction {item.get('id')!r}"
            rule = Interaction(
                id=_text(self.files, file, entry, item, "id"),
                a=self.drug_set(file, entry, item.get("a")),
                b=self.drug_set(file, entry, item.get("b")),
                severity=self.severity(file, entry, item),
                mechanism=_text(self.files, file, entry, item, "mechanism"),
                effect=_text(self.files, file, entry, item, "effect"),
                management=_text(self.files, file, entry, item, "management"),
                source=self.source_of(file, entry, item),
                suggestions=self.rxcuis(file, entry, item.get("suggestions", [])),
                onc_high_priority=bool(item.get("onc", False)),
            )
            if rule.id in seen:
                self.files.fail(file, entry, "duplicate interaction id")
            seen.add(rule.id)
            result.append(rule)
        return result

    def conditions(self) -> tuple[dict[str, ConditionConcept], dict[str, str]]:
        concepts: dict[str, ConditionConcept] = {}
        terms: dict[str, str] = {}
        for file, item in self.files.entries("conditions", "conditions"):
            entry = f"condition {item.get('code')!r}"
            code = _text(self.files, file, entry, item, "code")
            if code and not _ICD10.match(code):
                self.files.fail(file, entry, "not an ICD-10-CM code like N18.4")
            concept = ConditionConcept(
                code=code,
                display=_text(self.files, file, entry, item, "display"),
                synonyms=_strings(self.files, file, entry, item, "synonyms"),
                source=self.source_of(file, entry, item),
            )
            key = compact_icd10(code)
            if key in concepts:
                self.files.fail(file, entry, "duplicate condition code")
            concepts[key] = concept
            for text in (concept.display, *concept.synonyms):
                owner = terms.setdefault(normalise_term(text), key)
                if owner != key:
                    self.files.fail(file, entry, f"term {text!r} also names {owner}")
        return concepts, terms

    def allergies(
        self,
    ) -> tuple[dict[str, AllergyClass], dict[str, AllergyConcept], list[Allergen]]:
        classes: dict[str, AllergyClass] = {}
        terms: dict[str, AllergyConcept] = {}
        allergens: list[Allergen] = []

        def claim(file: str, entry: str, text: str, concept: AllergyConcept) -> None:
            owner = terms.setdefault(normalise_term(text), concept)
            if owner != concept:
                self.files.fail(file, entry, f"term {text!r} also names {owner.code}")

        for file, item in self.files.entries("allergies", "allergyClasses"):
            entry = f"allergy class {item.get('id')!r}"
            cross = []
            for raw in item.get("crossReactive", []):
                cross.append(
                    CrossReactivity(
                        classes=self.known_classes(file, entry, raw.get("classes", [])),
                        note=_text(self.files, file, entry, raw, "note"),
                        source=self.source_of(file, entry, raw),
                    )
                )
            allergy_class = AllergyClass(
                id=_text(self.files, file, entry, item, "id"),
                name=_text(self.files, file, entry, item, "name"),
                synonyms=_strings(self.files, file, entry, item, "synonyms"),
                members=DrugSet(
                    classes=self.known_classes(file, entry, item.get("memberClasses", [])),
                    drugs=frozenset(self.rxcuis(file, entry, item.get("memberDrugs", []))),
                ),
                cross_reactive=tuple(cross),
                source=self.source_of(file, entry, item),
                note=item.get("note"),
            )
            if allergy_class.id in classes:
                self.files.fail(file, entry, "duplicate allergy class id")
            classes[allergy_class.id] = allergy_class
            concept = AllergyConcept("CLASS", allergy_class.id, allergy_class.name)
            for text in (allergy_class.name, *allergy_class.synonyms):
                claim(file, entry, text, concept)
        for file, item in self.files.entries("allergies", "allergens"):
            entry = f"allergen {item.get('id')!r}"
            allergen = Allergen(
                id=_text(self.files, file, entry, item, "id"),
                name=_text(self.files, file, entry, item, "name"),
                synonyms=_strings(self.files, file, entry, item, "synonyms"),
                source=self.source_of(file, entry, item),
            )
            allergens.append(allergen)
            concept = AllergyConcept("ALLERGEN", allergen.id, allergen.name)
            for text in (allergen.name, *allergen.synonyms):
                claim(file, entry, text, concept)
        return classes, terms, allergens

    def contraindications(self) -> list[Contraindication]:
        result, seen = [], set()
        for file, item in self.files.entries("contraindications", "contraindications"):
            entry = f"contraindication {item.get('id')!r}"
            ranges = []
            for text in _strings(self.files, file, entry, item, "icd10"):
                parsed = Icd10Range.parse(text)
                if parsed.low > parsed.high:
                    self.files.fail(file, entry, f"ICD-10 range {text!r} is reversed")
                ranges.append(parsed)
            if not ranges:
                self.files.fail(file, entry, "needs at least one ICD-10 code or range")
            rule = Contraindication(
                id=_text(self.files, file, entry, item, "id"),
                drugs=self.drug_set(file, entry, item.get("drugs")),
                ranges=tuple(ranges),
                severity=self.severity(file, entry, item),
                effect=_text(self.files, file, entry, item, "effect"),
                management=_text(self.files, file, entry, item, "management"),
                source=self.source_of(file, entry, item),
                suggestions=self.rxcuis(file, entry, item.get("suggestions", [])),
            )
            if rule.id in seen:
                self.files.fail(file, entry, "duplicate contraindication id")
            seen.add(rule.id)
            result.append(rule)
        return result

    def duplicates(self) -> list[DuplicateGroup]:
        result = []
        for file, item in self.files.entries("duplicates", "duplicateGroups"):
            entry = f"duplicate group {item.get('id')!r}"
            prefixes = _strings(self.files, file, entry, item, "atc")
            if not prefixes:
                self.files.fail(file, entry, "needs at least one ATC prefix")
            result.append(
                DuplicateGroup(
                    id=_text(self.files, file, entry, item, "id"),
                    name=_text(self.files, file, entry, item, "name"),
                    atc_prefixes=prefixes,
                    source=self.source_of(file, entry, item),
                )
            )
        return result


def load_knowledge(directory: Path = DATA_DIR) -> ShippedKnowledgeBase:
    """Parse and validate every file in `directory`; KnowledgeError lists what is wrong."""
    files, version = _read(directory)
    builder = _Builder(files)
    sources = builder.sources()
    builder.drug_classes()
    builder.drugs_from_files()
    drug_terms = builder.drug_terms()
    interactions = builder.interactions()
    conditions, condition_terms = builder.conditions()
    allergy_classes, allergy_terms, allergens = builder.allergies()
    contraindications = builder.contraindications()
    duplicates = builder.duplicates()
    if files.problems:
        raise KnowledgeError(files.problems)
    return ShippedKnowledgeBase(
        version=version,
        sources=tuple(sources),
        _sources=MappingProxyType({s.id: s for s in sources}),
        _classes=MappingProxyType(builder.classes),
        _drugs=MappingProxyType(builder.drugs),
        _drug_terms=MappingProxyType(drug_terms),
        _conditions=MappingProxyType(conditions),
        _condition_terms=MappingProxyType(condition_terms),
        _allergy_classes=MappingProxyType(allergy_classes),
        _allergy_terms=MappingProxyType(allergy_terms),
        _allergens=tuple(allergens),
        _interactions=tuple(interactions),
        _contraindications=tuple(contraindications),
        _duplicates=tuple(duplicates),
    )


@cache
def load_shipped() -> ShippedKnowledgeBase:
    """The shipped knowledge base, loaded once per process."""
    return load_knowledge(DATA_DIR)
