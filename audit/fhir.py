"""Audit records as FHIR R4 AuditEvent resources (for a SIEM), validated by the
reference models. fhir.resources 8.x ships R5 by default; R4B is the R4 technical
correction whose AuditEvent matches R4's, so that is what we build and validate."""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent

from audit.chain import _plain

DICOM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CAREGRAPH = "urn:caregraph"

_ACTIONS = {"READ": "R", "CREATE": "C", "UPDATE": "U", "DELETE": "D", "EMERGENCY_ACCESS": "E"}
_INTERACTIONS = {"READ": "read", "CREATE": "create", "UPDATE": "update", "DELETE": "delete"}
# 0 success, 4 minor failure (refused), per the AuditEvent outcome value set.
_OUTCOMES = {"SUCCESS": "0", "FORBIDDEN": "4", "NOT_FOUND": "4", "RATE_LIMITED": "4"}


def _entity(entity: dict[str, Any]) -> dict[str, Any]:
    resource, record = entity["resourceType"], entity["recordId"]
    what: dict[str, Any] = {"reference": f"{resource}/{record}"}
    details = [{"type": "fields", "valueString": ",".join(entity.get("fields", []))}]
    if entity.get("emergencyGrantId"):
        details.append({"type": "emergencyGrant", "valueString": entity["emergencyGrantId"]})
    return {
        "what": what,
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
        "detail": details,
    }


def to_audit_event(record: dict[str, Any]) -> dict[str, Any]:
    """The FHIR JSON of one audit record (validated: raises on an invalid resource)."""
    plain = _plain({k: v for k, v in record.items() if k not in ("_id", "mac")})
    actor, operation = plain["actor"], plain["operation"]
    action = plain["action"]
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": f"caregraph-{plain['seq']}",
        "type": {"system": DICOM, "code": "110110", "display": "Patient Record"},
        "action": _ACTIONS[action],
        "recorded": plain["recordedAt"],
        "outcome": _OUTCOMES[plain["outcome"]],
        "outcomeDesc": plain["outcome"],
        "agent": [
            {
                "who": {
                    "identifier": {
                        "system": f"{CAREGRAPH}:user",
                        "value": actor.get("userId") or "anonymous",
                    }
                },
                "role": [{"text": actor.get("role") or "ANONYMOUS"}],
                "requestor": True,
                "network": {"address": operation["clientAddress"], "type": "2"},
                "policy": [operation["documentId"]] if operation.get("documentId") else None,
            }
        ],
        "source": {
            "site": operation.get("name") or "graphql",
            "observer": {"display": "CareGraph API"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": [_entity(e) for e in plain["entities"]] or None,
        "extension": [
            {"url": f"{CAREGRAPH}:audit-seq", "valueInteger": plain["seq"]},
            {"url": f"{CAREGRAPH}:request-id", "valueString": operation["requestId"]},
        ],
    }
    if action in _INTERACTIONS:
        event["subtype"] = [{"system": RESTFUL, "code": _INTERACTIONS[action]}]
    if actor.get("emergency"):
        event["purposeOfEvent"] = [
            {"coding": [{"system": ACT_REASON, "code": "ETREAT", "display": "Emergency Treatment"}]}
        ]
    event["agent"][0] = {k: v for k, v in event["agent"][0].items() if v is not None}
    event = {k: v for k, v in event.items() if v is not None}
    AuditEvent.model_validate(event)
    return event
