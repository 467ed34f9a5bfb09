"""Medication safety: the pure check (check.py) over the knowledge base, and the values
it reads and returns (model.py)."""

from safety.check import check, max_severity
from safety.model import Alert, AlertKind, AlertSeverity, Draft, Snapshot

__all__ = ["Alert", "AlertKind", "AlertSeverity", "Draft", "Snapshot", "check", "max_severity"]
