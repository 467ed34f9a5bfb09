"""Where PHI reads are noticed: a synchronous field extension on every field the policy
marks PHI (auth/policy.py PHI_FIELDS), and a root-field extension that notices denied
attempts on PHI records (NOT_FOUND for records out of scope, FORBIDDEN for roles).

Each extension only appends to the request's AuditBuffer (a dict update): no I/O, and
no async hook on sync fields, so auditing costs little per field (DESIGN.md §4).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info, get_object_definition
from strawberry.types.private import is_private
from strawberry.utils.str_converters import to_camel_case

from audit.records import Action, Outcome
from auth.policy import PHI_FIELDS, PHI_RESOURCES
from errors import Forbidden, NotFound

# (resource type, record id, patient id) of the object a PHI field belongs to.
Subject = Callable[[Any], tuple[str, Any, Any]]

SUBJECTS: dict[str, Subject] = {
    "Patient": lambda s: ("Patient", s.object_id, s.object_id),
    "Contact": lambda s: ("Patient", s.patient_id, s.patient_id),
    "Address": lambda s: ("Patient", s.patient_id, s.patient_id),
    "Appointment": lambda s: ("Appointment", s.object_id, s.patient_id),
    "Prescription": lambda s: ("Prescription", s.object_id, s.patient_id),
    "Bill": lambda s: ("Bill", s.id, s.patient_id),
}
PREFIXES = {"Contact": "contact.", "Address": "contact.address."}


class AuditRead(FieldExtension):
    def __init__(self, type_name: str, field_name: str) -> None:
        self.subject = SUBJECTS[type_name]
        self.label = PREFIXES.get(type_name, "") + field_name

    def _record(self, source: Any, info: Info, denied: bool) -> None:
        buffer = info.context.audit
        if buffer is None:
            return
        if buffer.channel.operation is None:
            buffer.name_operation(info.operation)
        resource, record_id, patient_id = self.subject(source)
        if denied:
            buffer.denied(
                Action.READ,
                Outcome.FORBIDDEN,
                resource,
                str(record_id),
                patient_id=str(patient_id),
                field=self.label,
            )
        else:
            buffer.read(resource, record_id, patient_id, self.label)

    def resolve(self, next_: Callable[..., Any], source: Any, info: Info, **kwargs: Any) -> Any:
        try:
            value = next_(source, info, **kwargs)
        except Forbidden:
            self._record(source, info, denied=True)
            raise
        self._record(source, info, denied=False)
        return value

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        try:
            value = await next_(source, info, **kwargs)
        except Forbidden:
            self._record(source, info, denied=True)
            raise
        self._record(source, info, denied=False)
        return value


_ROOT = re.compile(
    r"^(?:(create|update|delete|reschedule|cancel|complete))?"
    r"(patient|appointment|prescription|bill)s?$",
    re.IGNORECASE,
)
_ACTIONS = {
    None: Action.READ,
    "create": Action.CREATE,
    "delete": Action.DELETE,
}


def root_resource(field_name: str) -> tuple[Action, str] | None:
    """The action and resource type of a root field over PHI records, else None."""
    match = _ROOT.match(field_name)
    if match is None:
        return None
    verb, noun = match.group(1), match.group(2)
    action = _ACTIONS.get(verb.lower() if verb else None, Action.UPDATE)
    return action, noun.capitalize()


class AuditDenials(FieldExtension):
    """On root fields over PHI records: an out-of-scope (NOT_FOUND) or role-refused
    (FORBIDDEN) attempt is audited like a read, with the record id the caller named."""

    def __init__(self, action: Action, resource_type: str) -> None:
        self.action, self.resource_type = action, resource_type

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        buffer = info.context.audit
        if buffer is not None and buffer.channel.operation is None:
            buffer.name_operation(info.operation)  # writes record it too
        try:
            return await next_(source, info, **kwargs)
        except NotFound as error:
            entity = error.extensions.get("entity")
            buffer = info.context.audit
            if buffer is not None and entity in PHI_RESOURCES:
                buffer.denied(self.action, Outcome.NOT_FOUND, entity, str(error.extensions["id"]))
            raise
        except Forbidden:
            buffer = info.context.audit
            if buffer is not None:
                record_id = kwargs.get("id")
                buffer.denied(
                    self.action,
                    Outcome.FORBIDDEN,
                    self.resource_type,
                    str(record_id) if record_id is not None else "*",
                )
            raise


def apply_audit_policy(object_types: Iterable[type]) -> None:
    """Attach the extensions (after the permission checks, so they see denials).

    Field objects are shared by every schema built from the types: earlier audit
    extensions are removed first, so building again neither stacks nor reorders them."""
    for object_type in object_types:
        definition = get_object_definition(object_type, strict=True)
        phi = PHI_FIELDS.get(definition.name, frozenset())
        for field in definition.fields:
            if is_private(field.type):
                continue
            field.extensions = [
                extension
                for extension in field.extensions
                if not isinstance(extension, AuditRead | AuditDenials)
            ]
            name = field.graphql_name or to_camel_case(field.python_name)
            if name in phi:
                field.extensions.append(AuditRead(definition.name, name))
            elif definition.name in ("Query", "Mutation"):
                root = root_resource(name)
                if root is not None:
                    field.extensions.append(AuditDenials(*root))
