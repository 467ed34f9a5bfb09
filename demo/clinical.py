"""Coded clinical histories for the demo: every record gets the codes the API would give
it, prescriptions get the pharmacist's review, and a handful of patients carry a history
that raises each kind of medication alert (most patients raise none).

Runs after the base generator with its own random stream, so the base data (names,
visits, bills) stays exactly what it was for a seed.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from knowledge.coding import code_allergy, code_condition, code_drug
from knowledge.protocol import KnowledgeBase

Document = dict[str, Any]
# Active prescriptions started this recently still wait for the pharmacist.
REVIEW_WINDOW = timedelta(days=14)
DEMO_PHARMACY = "demo-pharmacy"
REACTIONS = ["rash", "hives", "swelling of the lips", "wheeze", "nausea"]
SEVERITIES = ["MILD", "MODERATE", "MODERATE", "SEVERE"]


def _version(rng: random.Random) -> str:
    return str(ObjectId(rng.randbytes(12)))


def code_patients(patients: list[Document], kb: KnowledgeBase, rng: random.Random) -> None:
    for patient in patients:
        patient["codedConditions"] = [code_condition(t, kb) for t in patient["conditions"]]
        patient["codedAllergies"] = [
            code_allergy(t, kb, reaction=rng.choice(REACTIONS), severity=rng.choice(SEVERITIES))
            for t in patient["allergies"]
        ]
        patient["clinicalVersion"] = _version(rng)


def code_prescriptions(prescriptions: list[Document], kb: KnowledgeBase, anchor: datetime) -> None:
    for prescription in prescriptions:
        prescription["drugCode"] = code_drug(prescription["drug"], kb)
        prescription["overrides"] = []
        start = prescription["startDate"]
        if prescription["status"] == "ACTIVE" and start >= anchor - REVIEW_WINDOW:
            prescription["verification"] = {"status": "PENDING_REVIEW"}
        else:
            reviewed = start + timedelta(hours=4)
            prescription["verification"] = {
                "status": "DISPENSED",
                "reviewedBy": DEMO_PHARMACY,
                "reviewedAt": reviewed,
                "dispensedBy": DEMO_PHARMACY,
                "dispensedAt": reviewed + timedelta(hours=1),
            }


# (scenario, patient changes, existing active drugs, the new drug awaiting review,
#  override reason for its critical alert or None)
SCENARIOS: list[dict[str, Any]] = [
    {
        "name": "penicillin allergy, prescribed Augmentin",
        "allergy": ("Penicillin", "hives and wheeze", "ANAPHYLAXIS"),
        "new": ("Augmentin", 875, "MG", "TWICE_DAILY", "Acute bronchitis"),
        "override": ("ALLERGY_NOT_CONFIRMED", "Patient reports a rash as a child only"),
    },
    {
        "name": "simvastatin, prescribed clarithromycin",
        "condition": "Hyperlipidemia",
        "existing": [("Simvastatin", 40, "MG", "ONCE_DAILY", "Hyperlipidemia")],
        "new": ("Clarithromycin", 500, "MG", "TWICE_DAILY", "Pneumonia"),
        "override": ("BENEFIT_OUTWEIGHS_RISK", "Asked the pharmacist to pause the statin"),
    },
    {
        "name": "CKD stage 4, prescribed naproxen",
        "condition": "CKD stage 4",
        "new": ("Naproxen", 500, "MG", "TWICE_DAILY", "Osteoarthritis"),
        "override": ("WILL_MONITOR", "Three days only; creatinine on Friday"),
    },
    {
        "name": "pregnant, prescribed lisinopril",
        "condition": "Pregnant",
        "female": True,
        "new": ("Lisinopril", 10, "MG", "ONCE_DAILY", "Hypertension"),
        "override": ("OTHER", "Entered before the pregnancy was recorded"),
    },
    {
        "name": "omeprazole, prescribed pantoprazole",
        "condition": "GERD",
        "existing": [("Omeprazole", 20, "MG", "ONCE_DAILY", "GERD")],
        "new": ("Pantoprazole", 40, "MG", "ONCE_DAILY", "GERD"),
    },
    {
        "name": "paracetamol above the daily maximum",
        "condition": "Osteoarthritis",
        "new": ("Paracetamol", 1.5, "G", "FOUR_TIMES_DAILY", "Osteoarthritis"),
    },
    {
        "name": "a remedy that matches no term",
        "new": ("Grandma's herbal tonic", 10, "ML", "ONCE_DAILY", "Fatigue"),
    },
]


def add_scenarios(
    patients: list[Document],
    appointments: list[Document],
    kb: KnowledgeBase,
    anchor: datetime,
    rng: random.Random,
) -> list[Document]:
    """Give the scenarios to adult patients who have seen a doctor; the new prescriptions
    (pending review) and the active ones they collide with."""
    seen_by: dict[ObjectId, ObjectId] = {}
    for appointment in appointments:
        if appointment["status"] == "COMPLETED":
            seen_by.setdefault(appointment["patientId"], appointment["doctorId"])
    candidates = [
        p
        for p in patients
        if p["_id"] in seen_by and 20 <= (anchor - p["birthDate"]).days // 365 <= 60
    ]
    created: list[Document] = []
    used: set[ObjectId] = set()
    for index, scenario in enumerate(SCENARIOS):
        patient = next(
            (
                p
                for p in candidates
                if p["_id"] not in used and (not scenario.get("female") or p["sex"] == "FEMALE")
            ),
            None,
        )
        if patient is None:
            continue  # a data set too small for this scenario
        used.add(patient["_id"])
        doctor = seen_by[patient["_id"]]
        if "condition" in scenario and scenario["condition"] not in patient["conditions"]:
            patient["conditions"].append(scenario["condition"])
            patient["codedConditions"].append(code_condition(scenario["condition"], kb))
        if "allergy" in scenario:
            text, reaction, severity = scenario["allergy"]
            if text not in patient["allergies"]:
                patient["allergies"].append(text)
            patient["codedAllergies"] = [
                a for a in patient["codedAllergies"] if a["text"] != text
            ] + [code_allergy(text, kb, reaction=reaction, severity=severity)]
        patient["clinicalVersion"] = _version(rng)
        for treatment in scenario.get("existing", []):
            created.append(
                _prescription(
                    patient["_id"], doctor, treatment, anchor - timedelta(days=60), kb, rng
                )
            )
        new = _prescription(
            patient["_id"], doctor, scenario["new"], anchor - timedelta(days=1 + index), kb, rng
        )
        new["verification"] = {"status": "PENDING_REVIEW"}
        if "override" in scenario:
            reason, comment = scenario["override"]
            new["pendingOverride"] = {"reason": reason, "comment": comment}
        created.append(new)
    return created


def _prescription(
    patient_id: ObjectId,
    doctor_id: ObjectId,
    treatment: tuple[str, float, str, str, str],
    start: datetime,
    kb: KnowledgeBase,
    rng: random.Random,
) -> Document:
    drug, dose, unit, frequency, indication = treatment
    return {
        "_id": ObjectId(rng.randbytes(12)),
        "patientId": patient_id,
        "doctorId": doctor_id,
        "drug": drug,
        "drugCode": code_drug(drug, kb),
        "indication": indication,
        "dosage": {"value": float(dose), "unit": unit},
        "frequency": frequency,
        "startDate": start,
        "endDate": start + timedelta(days=90),
        "costCents": rng.randint(500, 6000),
        "status": "ACTIVE",
        "verification": {
            "status": "DISPENSED",
            "reviewedBy": DEMO_PHARMACY,
            "reviewedAt": start,
            "dispensedBy": DEMO_PHARMACY,
            "dispensedAt": start,
        },
        "overrides": [],
        "createdAt": start,
        "updatedAt": start,
    }


def acknowledge_scenarios(
    patients: list[Document], prescriptions: list[Document], kb: KnowledgeBase, anchor: datetime
) -> None:
    """Store, with each scenario prescription, the prescriber's acknowledgement of its
    critical alerts, as `prescribe` would have required (the pharmacist sees them)."""
    from datasources.safety import draft_from_document, snapshot_from_documents
    from safety import AlertSeverity, check

    by_id = {p["_id"]: p for p in patients}
    for prescription in prescriptions:
        pending = prescription.pop("pendingOverride", None)
        if pending is None:
            continue
        patient_id = prescription["patientId"]
        active = [
            p for p in prescriptions if p["patientId"] == patient_id and p["status"] == "ACTIVE"
        ]
        snapshot = snapshot_from_documents(by_id[patient_id], active, anchor.date())
        alerts = check(snapshot, draft_from_document(prescription), kb)
        prescription["overrides"] = [
            {
                "alertId": alert.id,
                "kind": alert.kind.value,
                "severity": alert.severity.value,
                "summary": alert.summary,
                "reason": pending["reason"],
                "comment": pending["comment"],
                "acknowledgedBy": str(prescription["doctorId"]),
                "acknowledgedAt": prescription["createdAt"],
            }
            for alert in alerts
            if alert.severity is AlertSeverity.CRITICAL
        ]
