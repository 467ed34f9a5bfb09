"""Alerts to and from JSON, for the Redis result cache (finished values, never re-derived)."""

from __future__ import annotations

from typing import Any

from safety.model import Alert, AlertKind, AlertSeverity, Evidence, Suggestion


def alert_to_json(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "detail": alert.detail,
        "ruleId": alert.rule_id,
        "source": alert.source,
        "sourceUrl": alert.source_url,
        "evidence": [[e.kind, e.display, e.id, e.code] for e in alert.evidence],
        "suggestions": [[s.label, s.rxcui, s.display] for s in alert.suggestions],
    }


def alert_from_json(data: dict[str, Any]) -> Alert:
    return Alert(
        id=data["id"],
        kind=AlertKind(data["kind"]),
        severity=AlertSeverity(data["severity"]),
        summary=data["summary"],
        detail=data["detail"],
        rule_id=data["ruleId"],
        source=data["source"],
        source_url=data["sourceUrl"],
        evidence=tuple(
            Evidence(kind, display, id_, code) for kind, display, id_, code in data["evidence"]
        ),
        suggestions=tuple(
            Suggestion(label, rxcui, display) for label, rxcui, display in data["suggestions"]
        ),
    )
