"""The medication safety check: one pure function from (snapshot, draft, knowledge base)
to alerts. No I/O, no clock: the same inputs always give the same alerts.

No false alarm by construction: only what can harm is counted. Allergies marked resolved,
prescriptions stopped, completed, rejected by the pharmacy or whose dates do not meet the
draft's are filtered out before any rule is looked at (MedicationRecord.overlaps).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from knowledge.model import CrossReactivity, Drug, InteractionSeverity
from knowledge.protocol import KnowledgeBase
from safety.dose import daily_dose_mg
from safety.model import (
    Alert,
    AlertKind,
    AlertSeverity,
    AllergyRecord,
    AllergySeverity,
    AllergyStatus,
    Draft,
    Evidence,
    MedicationRecord,
    Snapshot,
    Suggestion,
)

SUMMARY_LIMIT = 140
# ICD-10-CM code standing for "pregnant" when the snapshot says so without a coded condition.
PREGNANT_STATE = "Z33.1"

_RULE_SEVERITY = {
    InteractionSeverity.CONTRAINDICATED: AlertSeverity.CRITICAL,
    InteractionSeverity.MAJOR: AlertSeverity.WARNING,
    InteractionSeverity.MODERATE: AlertSeverity.INFO,
    InteractionSeverity.MINOR: AlertSeverity.INFO,
}
_SERIOUS_REACTIONS = {AllergySeverity.SEVERE, AllergySeverity.ANAPHYLAXIS}


def check(snapshot: Snapshot, draft: Draft, kb: KnowledgeBase) -> list[Alert]:
    """Every alert the draft raises against the snapshot, most severe first."""
    alerts = list(_uncoded(snapshot, draft))
    drug = kb.drug(draft.drug.rxcui) if draft.drug.rxcui else None
    if drug is not None:
        concurrent = [
            m
            for m in snapshot.medications
            if m.id != draft.prescription_id and m.overlaps(draft.start, draft.end)
        ]
        alerts += _allergies(snapshot, drug, kb)
        alerts += _interactions(concurrent, drug, kb)
        alerts += _contraindications(snapshot, drug, kb)
        alerts += _duplicates(concurrent, drug, kb)
        alerts += _dose(snapshot, draft, drug, kb)
    unique = {alert.id: alert for alert in alerts}
    return sorted(unique.values(), key=lambda a: (-a.severity.rank, a.kind.value, a.summary))


def max_severity(alerts: Iterable[Alert]) -> AlertSeverity | None:
    return max((a.severity for a in alerts), key=lambda s: s.rank, default=None)


def _summary(text: str) -> str:
    return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1].rstrip() + "…"


def _alert_id(kind: AlertKind, rule_id: str, evidence: Iterable[Evidence]) -> str:
    key = "|".join(
        [kind.value, rule_id, *(f"{e.kind}:{e.id or e.code or e.display}" for e in evidence)]
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _make(
    kb: KnowledgeBase,
    kind: AlertKind,
    severity: AlertSeverity,
    *,
    rule_id: str,
    summary: str,
    detail: str,
    source: str,
    evidence: tuple[Evidence, ...],
    suggestions: Iterable[str] = (),
) -> Alert:
    first_source = kb.source(source.split(";", 1)[0].split(":", 1)[0].strip())
    return Alert(
        id=_alert_id(kind, rule_id, evidence),
        kind=kind,
        severity=severity,
        summary=_summary(summary),
        detail=detail,
        rule_id=rule_id,
        source=source,
        source_url=first_source.url if first_source else None,
        evidence=evidence,
        suggestions=tuple(_suggestions(suggestions, kb)),
    )


def _suggestions(rxcuis: Iterable[str], kb: KnowledgeBase) -> Iterator[Suggestion]:
    for rxcui in rxcuis:
        drug = kb.drug(rxcui)
        if drug is not None:
            yield Suggestion(label=f"Consider {drug.name} instead", rxcui=rxcui, display=drug.name)


def _drug_evidence(medication: MedicationRecord) -> Evidence:
    return Evidence(
        kind="PRESCRIPTION",
        display=medication.drug.label,
        id=medication.id,
        code=medication.drug.rxcui,
    )


def _uncoded(snapshot: Snapshot, draft: Draft) -> Iterator[Alert]:
    """What could not be checked, said once per entry: silence would read as "safe"."""
    entries: list[tuple[str, Evidence]] = []
    if not draft.drug.coded:
        entries.append(("the drug being prescribed", Evidence("DRAFT", draft.drug.text)))
    entries += [
        ("allergy", Evidence("ALLERGY", a.text))
        for a in snapshot.allergies
        if not a.coded and a.status is AllergyStatus.ACTIVE
    ]
    entries += [
        ("condition", Evidence("CONDITION", c.text)) for c in snapshot.conditions if not c.coded
    ]
    entries += [
        ("prescription", _drug_evidence(m))
        for m in snapshot.medications
        if not m.drug.coded and m.id != draft.prescription_id and m.overlaps(draft.start, draft.end)
    ]
    for what, evidence in entries:
        summary = f"Not checked: {what} '{evidence.display}' is not a coded term"
        yield Alert(
            id=_alert_id(AlertKind.UNCODED_ENTRY, "uncoded", (evidence,)),
            kind=AlertKind.UNCODED_ENTRY,
            severity=AlertSeverity.INFO,
            summary=_summary(summary),
            detail=(
                f"'{evidence.display}' did not match any term of the knowledge base, so no "
                "rule could be applied to it. Record it with a coded term, or check it by hand."
            ),
            rule_id="uncoded",
            source="knowledge base terms (names, brands and synonyms)",
            evidence=(evidence,),
        )


def _allergies(snapshot: Snapshot, drug: Drug, kb: KnowledgeBase) -> Iterator[Alert]:
    for allergy in snapshot.allergies:
        if allergy.status is not AllergyStatus.ACTIVE or not allergy.coded:
            continue
        yield from _allergy(allergy, drug, kb)


def _allergy(allergy: AllergyRecord, drug: Drug, kb: KnowledgeBase) -> Iterator[Alert]:
    evidence = (
        Evidence("ALLERGY", allergy.label, code=allergy.code),
        Evidence("DRAFT", drug.name, code=drug.rxcui),
    )
    reaction = f" (reaction: {allergy.reaction})" if allergy.reaction else ""
    severity_text = f", {allergy.severity.value.lower()}" if allergy.severity else ""
    if allergy.kind == "CLASS" and allergy.code:
        allergy_class = kb.allergy_class(allergy.code)
        if allergy_class is None:
            return
        if allergy_class.members.contains(drug):
            yield _make(
                kb,
                AlertKind.ALLERGY,
                AlertSeverity.CRITICAL,
                rule_id=allergy_class.id,
                summary=(
                    f"Allergy: {drug.name} is one of the "
                    f"{allergy_class.name.lower()} the patient is allergic to"
                ),
                detail=f"Recorded allergy to {allergy_class.name}{severity_text}{reaction}. "
                f"{drug.name} belongs to this class.",
                source=allergy_class.source,
                evidence=evidence,
            )
            return
        yield from _cross_reactive(
            allergy_class.id, allergy_class.cross_reactive, allergy, drug, kb, evidence
        )
    elif allergy.kind == "SUBSTANCE" and allergy.code:
        allergen = kb.drug(allergy.code)
        if allergen is None:
            return
        if allergen.components & drug.components:
            yield _make(
                kb,
                AlertKind.ALLERGY,
                AlertSeverity.CRITICAL,
                rule_id=f"substance:{allergen.rxcui}",
                summary=(
                    f"Allergy: the patient is allergic to "
                    f"{allergen.name}, which {drug.name} contains"
                ),
                detail=f"Recorded allergy to {allergen.name}{severity_text}{reaction}.",
                source="rxnorm: ingredient match",
                evidence=evidence,
            )
            return
        for allergy_class in kb.allergy_classes_containing(allergen):
            if allergy_class.members.contains(drug):
                serious = allergy.severity in _SERIOUS_REACTIONS
                yield _make(
                    kb,
                    AlertKind.ALLERGY,
                    AlertSeverity.CRITICAL if serious else AlertSeverity.WARNING,
                    rule_id=f"related:{allergy_class.id}",
                    summary=(
                        f"Allergy: {drug.name} is related to {allergen.name} "
                        f"({allergy_class.name.lower()}), a recorded allergy"
                    ),
                    detail=f"Recorded allergy to {allergen.name}{severity_text}{reaction}. "
                    f"Both are {allergy_class.name}; reactions to one often extend to the class.",
                    source=allergy_class.source,
                    evidence=evidence,
                )
            else:
                yield from _cross_reactive(
                    allergy_class.id, allergy_class.cross_reactive, allergy, drug, kb, evidence
                )


def _cross_reactive(
    class_id: str,
    cross_reactive: Iterable[CrossReactivity],
    allergy: AllergyRecord,
    drug: Drug,
    kb: KnowledgeBase,
    evidence: tuple[Evidence, ...],
) -> Iterator[Alert]:
    for cross in cross_reactive:
        if cross.classes & drug.classes:
            # Documented low cross-reactivity: a warning to weigh, never a refusal.
            yield _make(
                kb,
                AlertKind.ALLERGY,
                AlertSeverity.WARNING,
                rule_id=f"cross:{class_id}",
                summary=(
                    f"Possible cross-reactivity: {drug.name} "
                    f"with the recorded {allergy.label} allergy"
                ),
                detail=cross.note,
                source=cross.source,
                evidence=evidence,
            )


def _interactions(
    concurrent: Iterable[MedicationRecord], drug: Drug, kb: KnowledgeBase
) -> Iterator[Alert]:
    for medication in concurrent:
        other = kb.drug(medication.drug.rxcui) if medication.drug.rxcui else None
        if other is None or other.components & drug.components:
            continue  # the same ingredient is a duplicate, not an interaction
        for rule in kb.interactions_between(drug, other):
            yield _make(
                kb,
                AlertKind.INTERACTION,
                _RULE_SEVERITY[rule.severity],
                rule_id=rule.id,
                summary=(
                    f"Interaction ({rule.severity.value}): "
                    f"{drug.name} with {other.name}. {rule.effect}"
                ),
                detail=f"**Effect:** {rule.effect}\n\n**Mechanism:** {rule.mechanism}\n\n"
                f"**Management:** {rule.management}",
                source=rule.source,
                evidence=(
                    _drug_evidence(medication),
                    Evidence("DRAFT", drug.name, code=drug.rxcui),
                ),
                suggestions=rule.suggestions,
            )


def _contraindications(snapshot: Snapshot, drug: Drug, kb: KnowledgeBase) -> Iterator[Alert]:
    conditions = [(c.code, c.label) for c in snapshot.conditions if c.code]
    if snapshot.pregnant and not any(code == PREGNANT_STATE for code, _ in conditions):
        conditions.append((PREGNANT_STATE, "Pregnant (recorded pregnancy status)"))
    for rule in kb.contraindications_for(drug):
        for code, label in conditions:
            if code is not None and rule.matches_condition(code):
                yield _make(
                    kb,
                    AlertKind.CONTRAINDICATION,
                    _RULE_SEVERITY[rule.severity],
                    rule_id=rule.id,
                    summary=f"Contraindication ({rule.severity.value}): {drug.name} with {label}",
                    detail=f"**Effect:** {rule.effect}\n\n**Management:** {rule.management}",
                    source=rule.source,
                    evidence=(
                        Evidence("CONDITION", label, code=code),
                        Evidence("DRAFT", drug.name, code=drug.rxcui),
                    ),
                    suggestions=rule.suggestions,
                )


def _duplicates(
    concurrent: Iterable[MedicationRecord], drug: Drug, kb: KnowledgeBase
) -> Iterator[Alert]:
    groups = {g.id: g for g in kb.duplicate_groups_for(drug)}
    for medication in concurrent:
        other = kb.drug(medication.drug.rxcui) if medication.drug.rxcui else None
        if other is None:
            continue
        evidence = (_drug_evidence(medication), Evidence("DRAFT", drug.name, code=drug.rxcui))
        if other.components & drug.components:
            yield _make(
                kb,
                AlertKind.DUPLICATE_THERAPY,
                AlertSeverity.WARNING,
                rule_id=f"same-ingredient:{sorted(other.components & drug.components)[0]}",
                summary=f"Duplicate therapy: {other.name} is already prescribed for these dates",
                detail="An active prescription for the same ingredient overlaps this one.",
                source="rxnorm: ingredient match",
                evidence=evidence,
            )
            continue
        for group in kb.duplicate_groups_for(other):
            if group.id in groups:
                yield _make(
                    kb,
                    AlertKind.DUPLICATE_THERAPY,
                    AlertSeverity.WARNING,
                    rule_id=f"group:{group.id}",
                    summary=(
                        f"Duplicate therapy: {drug.name} and "
                        f"{other.name} are both {group.name.lower()}"
                    ),
                    detail=f"Two active drugs of the same therapeutic class ({group.name}, ATC "
                    f"{', '.join(group.atc_prefixes)}) overlap. Confirm both are intended.",
                    source=group.source,
                    evidence=evidence,
                )


def _dose(snapshot: Snapshot, draft: Draft, drug: Drug, kb: KnowledgeBase) -> Iterator[Alert]:
    dose = drug.dose
    daily = daily_dose_mg(draft.dose_value, draft.dose_unit, draft.frequency)
    if dose is None or daily is None:
        return
    maximum, age_source = dose.maximum_for(snapshot.age)
    evidence: tuple[Evidence, ...] = (
        Evidence("DRAFT", f"{drug.name} {_mg(daily)} mg/day", code=drug.rxcui),
    )
    if age_source is not None and snapshot.age is not None:
        evidence += (Evidence("PATIENT", f"age {snapshot.age}"),)
    source = age_source or drug.source
    note = f" Note: {dose.note}." if dose.note else ""
    if maximum == 0:
        yield _make(
            kb,
            AlertKind.DOSE_RANGE,
            AlertSeverity.CRITICAL,
            rule_id=f"dose-age:{drug.rxcui}",
            summary=f"Dose: {drug.name} is not for use at age {snapshot.age}",
            detail="The label contraindicates this drug in this age group.",
            source=source,
            evidence=evidence,
        )
    elif daily > maximum * 1.0001:
        factor = daily / maximum
        yield _make(
            kb,
            AlertKind.DOSE_RANGE,
            AlertSeverity.CRITICAL if factor >= 2 else AlertSeverity.WARNING,
            rule_id=f"dose-max:{drug.rxcui}",
            summary=(
                f"Dose: {_mg(daily)} mg/day of {drug.name} "
                f"exceeds the maximum of {_mg(maximum)} mg/day"
            ),
            detail=f"The daily dose ({draft.dose_value:g} {draft.dose_unit} × "
            f"{draft.frequency}) is {factor:.1f}× the labelled maximum.{note}",
            source=source,
            evidence=evidence,
        )
    elif daily < dose.usual_min * 0.9999:
        yield _make(
            kb,
            AlertKind.DOSE_RANGE,
            AlertSeverity.INFO,
            rule_id=f"dose-min:{drug.rxcui}",
            summary=(
                f"Dose: {_mg(daily)} mg/day of {drug.name} is below the "
                f"usual {_mg(dose.usual_min)}-{_mg(dose.usual_max)} mg/day"
            ),
            detail=f"A dose under the usual range may be ineffective unless intended.{note}",
            source=drug.source,
            evidence=evidence,
        )


def _mg(value: float) -> str:
    return f"{value:.4g}"
