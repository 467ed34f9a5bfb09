"""Free text to coded records, as stored in MongoDB. What maps gets its code and display
beside the text as typed; what does not map is kept verbatim with a null code, so it is
never silently dropped and the check reports it as uncoded."""

from __future__ import annotations

from typing import Any

from knowledge.protocol import KnowledgeBase

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
ALLERGY_CLASS = "urn:caregraph:allergy-class"
ALLERGEN = "urn:caregraph:allergen"

Document = dict[str, Any]


def code_drug(text: str, kb: KnowledgeBase) -> Document:
    drug = kb.find_drug(text)
    if drug is None:
        return {"text": text, "rxcui": None, "atc": None, "display": None}
    return {"text": text, "rxcui": drug.rxcui, "atc": drug.atc, "display": drug.name}


def code_condition(text: str, kb: KnowledgeBase) -> Document:
    concept = kb.find_condition(text)
    if concept is None:
        return {"text": text, "code": None, "system": None, "display": None}
    return {"text": text, "code": concept.code, "system": ICD10CM, "display": concept.display}


def code_allergy(
    text: str,
    kb: KnowledgeBase,
    *,
    reaction: str | None = None,
    severity: str | None = None,
    status: str = "ACTIVE",
) -> Document:
    concept = kb.find_allergy(text)
    base: Document = {
        "text": text,
        "reaction": reaction,
        "severity": severity,
        "status": status,
    }
    if concept is None:
        return {**base, "kind": None, "code": None, "system": None, "display": None}
    system = {"CLASS": ALLERGY_CLASS, "SUBSTANCE": RXNORM, "ALLERGEN": ALLERGEN}[concept.kind]
    return {
        **base,
        "kind": concept.kind,
        "code": concept.code,
        "system": system,
        "display": concept.display,
    }


def code_patient_fields(fields: Document, kb: KnowledgeBase) -> Document:
    """`fields` (a new patient or an update) plus the coded forms of any free-text
    conditions or allergies in it. Explicit allergy records (with reaction, severity and
    status) win over the plain list, which is then kept in step as their texts."""
    coded: Document = dict(fields)
    if "conditions" in fields:
        coded["codedConditions"] = [code_condition(t, kb) for t in fields["conditions"]]
    if "codedAllergies" in fields:
        records = fields["codedAllergies"]
        coded["codedAllergies"] = [
            code_allergy(
                r["text"],
                kb,
                reaction=r.get("reaction"),
                severity=r.get("severity"),
                status=r.get("status", "ACTIVE"),
            )
            for r in records
        ]
        coded["allergies"] = [r["text"] for r in records if r.get("status", "ACTIVE") == "ACTIVE"]
    elif "allergies" in fields:
        coded["codedAllergies"] = [code_allergy(t, kb) for t in fields["allergies"]]
    return coded
