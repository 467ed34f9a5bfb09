"""The per-request audit buffer: PHI reads and denied attempts collect here while the
request runs (cheap, synchronous calls), and become records once, at the end.

Reads are keyed by record, so reading ten PHI fields of one patient is one entity with
ten field names, and a request's reads are one record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from audit.records import Action, Actor, Channel, Entity, Outcome, build_record


class AuditBuffer:
    def __init__(self, actor: Actor, channel: Channel) -> None:
        self.actor, self.channel = actor, channel
        self._reads: dict[tuple[str, Any], Entity] = {}
        self._denials: dict[tuple[Action, Outcome, str, str], Entity] = {}

    def name_operation(self, operation: Any) -> None:
        """The operation's name from the parsed document, when the request did not say."""
        name = getattr(getattr(operation, "name", None), "value", None)
        if name and self.channel.operation is None:
            self.channel = replace(self.channel, operation=name)

    def read(self, resource_type: str, record_id: Any, patient_id: Any, field: str) -> None:
        """A PHI field of one record was resolved (the hot path: one dict lookup)."""
        entity = self._reads.get((resource_type, record_id))
        if entity is None:
            entity = Entity(resource_type, str(record_id), str(patient_id))
            self._reads[(resource_type, record_id)] = entity
        entity.fields.add(field)

    def denied(
        self,
        action: Action,
        outcome: Outcome,
        resource_type: str,
        record_id: str,
        *,
        patient_id: str | None = None,
        field: str | None = None,
    ) -> None:
        key = (action, outcome, resource_type, record_id)
        entity = self._denials.get(key)
        if entity is None:
            entity = self._denials[key] = Entity(resource_type, record_id, patient_id)
        if field:
            entity.fields.add(field)

    @property
    def empty(self) -> bool:
        return not self._reads and not self._denials

    def patients_read(self) -> set[str]:
        """Patients whose PHI this request read successfully (for the bulk-export guard)."""
        return {entity.patient_id for entity in self._reads.values() if entity.patient_id}

    def records(
        self,
        *,
        emergency_grants: Mapping[str, str] | None = None,
        read_outcome: Outcome = Outcome.SUCCESS,
    ) -> list[dict[str, Any]]:
        """Every record this request produced. `emergency_grants` maps patient ids the
        caller reached only through a break-glass grant to that grant's id;
        `read_outcome` is RATE_LIMITED when the reads were computed but refused."""
        grants = emergency_grants or {}
        for entity in (*self._reads.values(), *self._denials.values()):
            if entity.patient_id is not None and entity.patient_id in grants:
                entity.emergency_grant_id = grants[entity.patient_id]
        groups: dict[tuple[Action, Outcome], list[Entity]] = {}
        if self._reads:
            groups[(Action.READ, read_outcome)] = list(self._reads.values())
        for (action, outcome, _, _), entity in self._denials.items():
            groups.setdefault((action, outcome), []).append(entity)
        return [
            build_record(
                actor=self.actor,
                channel=self.channel,
                action=action,
                outcome=outcome,
                entities=entities,
            )
            for (action, outcome), entities in groups.items()
        ]
