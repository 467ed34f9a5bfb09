"""Resolvers for medication safety: checks, alerts on prescriptions, prescribing with
acknowledged overrides, the pharmacist's queue and verification lifecycle."""

from __future__ import annotations

from typing import Any

import strawberry

from datasources.ids import parse_id
from datasources.safety import CheckRequest, SafetyService, draft_from_document
from datasources.verification import (
    DISPENSED,
    PENDING_REVIEW,
    REJECTED,
    VERIFIED,
    VerificationConflict,
)
from errors import CareGraphError, NotFound
from knowledge.coding import code_drug
from resolvers.common import Info, load_existing, page_request
from safety import Alert, AlertSeverity, max_severity
from safety.model import CodedDrug, Draft
from schema import prescription as prescription_types
from schema import safety as types
from schema.pagination import Connection, connection

SEVERITY_RANK: dict[AlertSeverity | None, int] = {None: 0, **{s: s.rank for s in AlertSeverity}}


class SafetyAlertsNotAcknowledged(CareGraphError):
    """createPrescription (kept for existing clients) cannot return a typed refusal."""

    code = "SAFETY_ALERT_NOT_ACKNOWLEDGED"


def _service(info: Info) -> SafetyService:
    service = info.context.safety
    assert service is not None, "the app builds a SafetyService for every request"
    return service


def to_alert(alert: Alert) -> types.MedicationAlert:
    return types.MedicationAlert(
        id=strawberry.ID(alert.id),
        kind=types.AlertKind(alert.kind.value),
        severity=types.AlertSeverity(alert.severity.value),
        summary=alert.summary,
        detail=alert.detail,
        rule_id=alert.rule_id,
        source=types.AlertSource(label=alert.source, url=alert.source_url),
        evidence=[
            types.AlertEvidence(kind=e.kind, display=e.display, id=e.id, code=e.code)
            for e in alert.evidence
        ],
        suggestions=[
            types.AlertSuggestion(label=s.label, rxcui=s.rxcui, display=s.display)
            for s in alert.suggestions
        ],
    )


def drug_coding(code: dict[str, Any]) -> types.DrugCoding:
    return types.DrugCoding(
        text=code["text"],
        rxcui=code.get("rxcui"),
        atc=code.get("atc"),
        display=code.get("display"),
        coded=code.get("rxcui") is not None,
    )


def _draft(info: Info, draft: types.DraftPrescriptionInput) -> Draft:
    draft.validate()
    code = code_drug(draft.drug, _service(info).kb)
    return Draft(
        drug=CodedDrug(
            text=draft.drug, rxcui=code["rxcui"], atc=code["atc"], display=code["display"]
        ),
        start=draft.start_date,
        end=draft.end_date,
        dose_value=draft.dosage.value if draft.dosage else None,
        dose_unit=draft.dosage.unit.value if draft.dosage else None,
        frequency=draft.frequency.value if draft.frequency else None,
    )


async def resolve_medication_safety_check(
    info: Info, patient_id: strawberry.ID, draft: types.DraftPrescriptionInput
) -> types.MedicationSafetyCheck:
    object_id = parse_id(patient_id, field="patientId")
    checked = _draft(info, draft)
    alerts = await _service(info).check_one(object_id, checked)
    if alerts is None:
        raise NotFound("Patient", patient_id)
    highest = max_severity(alerts)
    return types.MedicationSafetyCheck(
        alerts=[to_alert(a) for a in alerts],
        highest_severity=types.AlertSeverity(highest.value) if highest else None,
        knowledge_base_version=_service(info).kb.version,
        drug=drug_coding(
            {
                "text": checked.drug.text,
                "rxcui": checked.drug.rxcui,
                "atc": checked.drug.atc,
                "display": checked.drug.display,
            }
        ),
    )


async def resolve_prescription_alerts(root: Any, info: Info) -> list[types.MedicationAlert]:
    """Today's alerts for a stored prescription, batched across a page by the loader."""
    request = CheckRequest(root.patient_id, draft_from_document(root.document))
    alerts = await _service(info).alerts_loader.load(request)
    return [to_alert(a) for a in alerts or []]


def resolve_prescription_drug_coding(root: Any) -> types.DrugCoding:
    return drug_coding(root.document.get("drugCode") or {"text": root.drug})


def resolve_prescription_verification(root: Any) -> types.PrescriptionVerification | None:
    verification = root.document.get("verification")
    if not verification:
        return None  # recorded before pharmacist verification existed
    return types.PrescriptionVerification(
        status=types.VerificationStatus(verification["status"]),
        reviewed_by=verification.get("reviewedBy"),
        reviewed_at=verification.get("reviewedAt"),
        rejection_reason=verification.get("rejectionReason"),
        dispensed_by=verification.get("dispensedBy"),
        dispensed_at=verification.get("dispensedAt"),
    )


def resolve_prescription_overrides(root: Any) -> list[types.AlertOverride]:
    return [
        types.AlertOverride(
            alert_id=strawberry.ID(o["alertId"]),
            kind=types.AlertKind(o["kind"]),
            severity=types.AlertSeverity(o["severity"]),
            summary=o["summary"],
            reason=types.OverrideReason(o["reason"]),
            comment=o.get("comment"),
            acknowledged_by=strawberry.ID(o["acknowledgedBy"]),
            acknowledged_at=o["acknowledgedAt"],
        )
        for o in root.document.get("overrides", [])
    ]


def resolve_patient_coded_conditions(root: Any) -> list[types.CodedCondition]:
    records = root.document.get("codedConditions")
    if records is None:
        records = [{"text": t} for t in root.conditions]
    return [
        types.CodedCondition(
            text=r["text"],
            code=r.get("code"),
            system=r.get("system"),
            display=r.get("display"),
            coded=r.get("code") is not None,
        )
        for r in records
    ]


def resolve_patient_coded_allergies(root: Any) -> list[types.AllergyRecord]:
    records = root.document.get("codedAllergies")
    if records is None:
        records = [{"text": t} for t in root.allergies]
    return [
        types.AllergyRecord(
            text=r["text"],
            kind=r.get("kind"),
            code=r.get("code"),
            system=r.get("system"),
            display=r.get("display"),
            coded=r.get("code") is not None,
            reaction=r.get("reaction"),
            severity=types.AllergySeverity(r["severity"]) if r.get("severity") else None,
            status=types.AllergyStatus(r.get("status") or "ACTIVE"),
        )
        for r in records
    ]


def resolve_knowledge_base(info: Info) -> types.KnowledgeBaseInfo:
    kb = _service(info).kb
    counts = kb.counts()
    return types.KnowledgeBaseInfo(
        version=kb.version,
        sources=[types.KnowledgeSource(name=s.name, url=s.url) for s in kb.sources],
        drug_count=counts.drugs,
        rule_count=counts.rules,
    )


async def resolve_pharmacy_queue(
    info: Info,
    first: int | None = None,
    after: str | None = None,
    min_severity: types.AlertSeverity | None = None,
) -> Connection[prescription_types.Prescription]:
    minimum = SEVERITY_RANK[AlertSeverity(min_severity.value)] if min_severity else 0
    queue = info.context.sources.prescriptions
    from datasources.verification import pharmacy_queue_page, queue_count

    page = await pharmacy_queue_page(
        queue, request=page_request(info, first, after), minimum=minimum
    )
    return connection(
        page,
        prescription_types.Prescription.from_document,
        counter=lambda: queue_count(queue, minimum=minimum),
    )


async def create_checked(
    info: Info,
    input: prescription_types.CreatePrescriptionInput,
    acknowledgements: list[types.AlertAcknowledgementInput],
) -> tuple[dict[str, Any] | None, list[Alert], list[Alert]]:
    """Check the new prescription and save it unless a critical alert is unacknowledged:
    (document or None, all alerts, unacknowledged critical alerts)."""
    from schema import validation as check

    fields = input.to_document()
    patient_id = parse_id(input.patient_id, field="patientId")
    doctor_id = parse_id(input.doctor_id, field="doctorId")
    loaders = info.context.loaders
    await load_existing(loaders.patient_by_id, patient_id, "Patient", input.patient_id)
    await load_existing(loaders.doctor_by_id, doctor_id, "Doctor", input.doctor_id)
    service = _service(info)
    drug_code = code_drug(fields["drug"], service.kb)
    draft = Draft(
        drug=CodedDrug(
            text=fields["drug"],
            rxcui=drug_code["rxcui"],
            atc=drug_code["atc"],
            display=drug_code["display"],
        ),
        start=input.start_date,
        end=input.end_date,
        dose_value=fields["dosage"]["value"],
        dose_unit=fields["dosage"]["unit"],
        frequency=fields["frequency"],
    )
    alerts = await service.check_one(patient_id, draft) or []
    given = {str(a.alert_id): a for a in acknowledgements}
    critical = [a for a in alerts if a.severity is AlertSeverity.CRITICAL]
    unacknowledged = [a for a in critical if a.id not in given]
    if unacknowledged:
        return None, alerts, unacknowledged
    principal = info.context.principal
    assert principal is not None
    from datasources.documents import utcnow

    now = utcnow()
    overrides = [
        {
            "alertId": a.id,
            "kind": a.kind.value,
            "severity": a.severity.value,
            "summary": a.summary,
            "reason": given[a.id].reason.value,
            "comment": check.optional_text(
                given[a.id].comment, "acknowledgements.comment", max_length=1000
            ),
            "acknowledgedBy": str(principal.user_id),
            "acknowledgedAt": now,
        }
        for a in critical
    ]
    highest = max_severity(alerts)
    document = await info.context.sources.prescriptions.insert(
        fields={
            **fields,
            "patientId": patient_id,
            "doctorId": doctor_id,
            "drugCode": drug_code,
            "verification": {"status": PENDING_REVIEW},
            "overrides": overrides,
            "safety": {
                "rank": SEVERITY_RANK[highest],
                "maxSeverity": highest.value if highest else None,
                "alertCount": len(alerts),
                "knowledgeBaseVersion": service.kb.version,
            },
        }
    )
    return document, alerts, []


async def resolve_prescribe(
    info: Info,
    input: prescription_types.CreatePrescriptionInput,
    acknowledgements: list[types.AlertAcknowledgementInput] | None = None,
) -> prescription_types.Prescription | types.PrescriptionRefused:
    document, alerts, unacknowledged = await create_checked(info, input, acknowledgements or [])
    if document is None:
        return types.PrescriptionRefused(
            message=f"{len(unacknowledged)} critical alert(s) need an acknowledgement with "
            "a reason before this prescription can be saved",
            alerts=[to_alert(a) for a in alerts],
            unacknowledged=[to_alert(a) for a in unacknowledged],
        )
    return prescription_types.Prescription.from_document(document)


async def create_prescription_or_raise(
    info: Info, input: prescription_types.CreatePrescriptionInput
) -> dict[str, Any]:
    document, _, unacknowledged = await create_checked(info, input, [])
    if document is None:
        raise SafetyAlertsNotAcknowledged(
            "critical medication alerts: use `prescribe` to see them and acknowledge each "
            "with a reason",
            alertIds=[a.id for a in unacknowledged],
            summaries=[a.summary for a in unacknowledged],
        )
    return document


async def _transition(
    info: Info, id: strawberry.ID, requested: str, **fields: Any
) -> prescription_types.Prescription | types.InvalidVerificationTransition:
    from datasources.verification import transition

    # Who may call is the policy table's (PHARMACIST only); who did it is recorded.
    principal = info.context.principal
    assert principal is not None
    try:
        document = await transition(
            info.context.sources.prescriptions,
            id=parse_id(id),
            requested=requested,
            by=str(principal.user_id),
            **fields,
        )
    except VerificationConflict as conflict:
        return types.InvalidVerificationTransition(
            current_status=types.VerificationStatus(conflict.current) if conflict.current else None,
            requested_status=types.VerificationStatus(requested),
            message=str(conflict),
        )
    return prescription_types.Prescription.from_document(document)


async def resolve_verify_prescription(
    info: Info, id: strawberry.ID
) -> prescription_types.Prescription | types.InvalidVerificationTransition:
    return await _transition(info, id, VERIFIED)


async def resolve_reject_prescription(
    info: Info, id: strawberry.ID, reason: str
) -> prescription_types.Prescription | types.InvalidVerificationTransition:
    from schema import validation as check

    text = check.text(reason, "reason", max_length=1000)
    return await _transition(info, id, REJECTED, rejectionReason=text)


async def resolve_dispense_prescription(
    info: Info, id: strawberry.ID
) -> prescription_types.Prescription | types.InvalidVerificationTransition:
    return await _transition(info, id, DISPENSED)
