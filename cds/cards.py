"""Alerts as CDS Hooks 2.0 cards (https://cds-hooks.hl7.org/2.0/#card-attributes)."""

from __future__ import annotations

import uuid
from typing import Any

from cds.fhir import DraftOrder
from knowledge.coding import RXNORM
from knowledge.protocol import KnowledgeBase
from safety import Alert, AlertSeverity

# Deterministic card and suggestion ids: the same hook instance and alert give the same
# uuid, so a client's feedback names a card we can trace back to its rule.
_NAMESPACE = uuid.UUID("5b0c5d8e-6f0c-4d8e-9a55-2f6c3c1d7a10")
OVERRIDE_SYSTEM = "urn:caregraph:override-reason"
OVERRIDE_REASONS = [
    ("PATIENT_TOLERATED_BEFORE", "Patient has tolerated this drug before"),
    ("BENEFIT_OUTWEIGHS_RISK", "Benefit outweighs the risk"),
    ("WILL_MONITOR", "Will monitor the patient"),
    ("ALLERGY_NOT_CONFIRMED", "Allergy not confirmed"),
    ("SPECIALIST_ADVICE", "On specialist advice"),
    ("OTHER", "Other reason"),
]
_INDICATOR = {
    AlertSeverity.INFO: "info",
    AlertSeverity.WARNING: "warning",
    AlertSeverity.CRITICAL: "critical",
}


def card_uuid(hook_instance: str, order: str, alert_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{hook_instance}|{order}|{alert_id}"))


def card(alert: Alert, order: DraftOrder, hook_instance: str, kb: KnowledgeBase) -> dict[str, Any]:
    card_id = card_uuid(hook_instance, order.reference, alert.id)
    body: dict[str, Any] = {
        "uuid": card_id,
        "summary": alert.summary,
        "indicator": _INDICATOR[alert.severity],
        "detail": f"{alert.detail}\n\n*Rule `{alert.rule_id}`; source: {alert.source}.*",
        "source": {
            "label": "CareGraph medication safety",
            **({"url": alert.source_url} if alert.source_url else {}),
            "topic": {
                "system": "urn:caregraph:alert-kind",
                "code": alert.kind.value,
                "display": alert.kind.value.replace("_", " ").lower(),
            },
        },
    }
    suggestions = [
        _suggestion(s.rxcui, s.label, order, card_id, kb) for s in alert.suggestions if s.rxcui
    ]
    if suggestions:
        body["suggestions"] = suggestions
        body["selectionBehavior"] = "at-most-one"
    if alert.severity is not AlertSeverity.INFO:
        body["overrideReasons"] = [
            {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
            for code, display in OVERRIDE_REASONS
        ]
    return body


def _suggestion(
    rxcui: str, label: str, order: DraftOrder, card_id: str, kb: KnowledgeBase
) -> dict[str, Any]:
    drug = kb.drug(rxcui)
    assert drug is not None  # suggestions are validated against the drugs at load
    replacement = {
        **{k: v for k, v in order.resource.items() if k not in ("id", "medicationReference")},
        "resourceType": "MedicationRequest",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": drug.rxcui, "display": drug.name}],
            "text": drug.name,
        },
    }
    replacement.pop("dosageInstruction", None)  # the prescriber chooses the new dose
    return {
        "label": label,
        "uuid": str(uuid.uuid5(_NAMESPACE, f"{card_id}|{rxcui}")),
        "isRecommended": False,
        "actions": [
            {
                "type": "delete",
                "description": f"Remove the draft order for {order.draft.drug.label}",
                "resourceId": [order.reference],
            },
            {
                "type": "create",
                "description": f"Order {drug.name} instead (dose to be chosen)",
                "resource": replacement,
            },
        ],
    }
