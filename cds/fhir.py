"""FHIR R4 MedicationRequests (validated with fhir.resources.R4B) to safety-check drafts.

fhir.resources 8.x ships R5 at its default import path; R4B is the R4 technical
correction, whose Bundle and MedicationRequest accept the R4 resources CDS clients send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.medicationrequest import MedicationRequest
from pydantic import ValidationError

from knowledge.coding import RXNORM
from knowledge.protocol import KnowledgeBase
from safety.model import CodedDrug, Draft

_UNITS = {"mg": "MG", "g": "G", "mcg": "MCG", "ug": "MCG", "µg": "MCG"}
_PERIOD_DAYS = {"h": 1 / 24, "d": 1.0, "wk": 7.0, "min": 1 / 1440}
_PER_DAY_FREQUENCY = {
    1.0: "ONCE_DAILY",
    2.0: "TWICE_DAILY",
    3.0: "THREE_TIMES_DAILY",
    4.0: "FOUR_TIMES_DAILY",
    6.0: "EVERY_4_HOURS",
}


class BadRequest(Exception):
    """The request breaks the CDS Hooks or FHIR rules: a 400 with this message."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details or []


@dataclass(frozen=True)
class DraftOrder:
    reference: str  # "MedicationRequest/<id>"
    resource: dict[str, Any]  # as received, for suggestion actions
    draft: Draft


def _validation_details(error: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in error.errors()[:10]
    ]


def parse_draft_orders(raw: object, kb: KnowledgeBase, today: date) -> list[DraftOrder]:
    if not isinstance(raw, dict):
        raise BadRequest("context.draftOrders must be a FHIR Bundle (a JSON object)")
    try:
        bundle = Bundle.model_validate(raw)
    except ValidationError as error:
        raise BadRequest(
            "context.draftOrders is not a valid FHIR R4 Bundle", _validation_details(error)
        ) from None
    orders = []
    for index, entry in enumerate(bundle.entry or []):
        resource = entry.resource
        raw_resource = raw["entry"][index].get("resource", {})
        if resource is None or raw_resource.get("resourceType") != "MedicationRequest":
            raise BadRequest(
                f"context.draftOrders.entry[{index}] must hold a MedicationRequest "
                "(this service checks medication orders only)"
            )
        try:
            request = MedicationRequest.model_validate(raw_resource)
        except ValidationError as error:
            raise BadRequest(
                f"context.draftOrders.entry[{index}] is not a valid MedicationRequest",
                _validation_details(error),
            ) from None
        reference = f"MedicationRequest/{request.id or index}"
        orders.append(DraftOrder(reference, raw_resource, _draft(request, reference, kb, today)))
    if not orders:
        raise BadRequest("context.draftOrders holds no MedicationRequest")
    return orders


def _drug(request: MedicationRequest, kb: KnowledgeBase) -> CodedDrug:
    concept = request.medicationCodeableConcept
    if concept is None:
        raise BadRequest(
            f"MedicationRequest/{request.id}: medicationCodeableConcept is required "
            "(a Medication reference cannot be resolved by this service)"
        )
    text = concept.text or next((c.display for c in concept.coding or [] if c.display), None)
    for coding in concept.coding or []:
        if coding.system == RXNORM and coding.code:
            drug = kb.drug(coding.code)
            if drug is not None:
                return CodedDrug(
                    text=text or drug.name, rxcui=drug.rxcui, atc=drug.atc, display=drug.name
                )
    label = text or next((c.code for c in concept.coding or [] if c.code), "unnamed medication")
    drug = kb.find_drug(label)
    if drug is None:
        return CodedDrug(text=label)
    return CodedDrug(text=label, rxcui=drug.rxcui, atc=drug.atc, display=drug.name)


def _as_date(value: object) -> date | None:
    """FHIR dateTime is a date, a partial date or an instant: the day it names."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _draft(request: MedicationRequest, reference: str, kb: KnowledgeBase, today: date) -> Draft:
    dose_value = dose_unit = frequency = None
    instruction = request.dosageInstruction[0] if request.dosageInstruction else None
    if instruction is not None:
        if instruction.asNeededBoolean:
            frequency = "AS_NEEDED"
        for dose_and_rate in instruction.doseAndRate or []:
            quantity = dose_and_rate.doseQuantity
            if quantity is not None and quantity.value is not None:
                unit = (quantity.code or quantity.unit or "").strip().lower()
                dose_value, dose_unit = float(quantity.value), _UNITS.get(unit)
                break
        repeat = instruction.timing.repeat if instruction.timing else None
        if frequency is None and repeat is not None and repeat.frequency and repeat.period:
            days = _PERIOD_DAYS.get(repeat.periodUnit or "")
            if days:
                per_day = round(repeat.frequency / (float(repeat.period) * days), 4)
                frequency = (
                    "WEEKLY" if abs(per_day - 1 / 7) < 1e-3 else _PER_DAY_FREQUENCY.get(per_day)
                )
    period = request.dispenseRequest.validityPeriod if request.dispenseRequest else None
    start = _as_date(period.start) if period else None
    end = _as_date(period.end) if period else None
    authored = _as_date(request.authoredOn)
    return Draft(
        drug=_drug(request, kb),
        start=start or authored or today,
        end=end,
        dose_value=dose_value,
        dose_unit=dose_unit,
        frequency=frequency,
        prescription_id=reference,
    )
