"""The object-level rules of auth/policy.py's MUTATIONS, as the permission that
schema/__init__.py attaches to each mutation at schema build: which input fields the
caller's role may set, and whose record the caller acts for. No resolver calls these, so
none can forget them.

The rules name arguments and input fields as the client sends them; `MutationGuard`
translates them to Python names when the schema is built, and refuses to build when the
table names an argument or field the mutation does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from strawberry.permission import BasePermission
from strawberry.types.base import StrawberryMaybe, StrawberryObjectDefinition, get_object_definition
from strawberry.types.field import StrawberryField
from strawberry.types.unset import UNSET
from strawberry.utils.str_converters import to_camel_case

from auth.policy import Argument, MutationRule, Stored
from auth.roles import Principal, Role
from datasources.documents import Document
from datasources.ids import parse_id
from datasources.loaders import Loaders
from datasources.typed_loader import TypedLoader
from errors import Forbidden
from resolvers.common import Info

# Who a role acts as: the record linked to the caller's account.
OWN_RECORD_MESSAGES = {
    Role.PATIENT: "patients may only act for their own record",
    Role.DOCTOR: "doctors may only act as themselves",
}


def graphql_name(field: StrawberryField) -> str:
    return field.graphql_name or to_camel_case(field.python_name)


def role_of(info: Info) -> Role | None:
    principal = info.context.principal
    return principal.effective_role if principal else None


def own_record(principal: Principal, role: Role) -> ObjectId | None:
    return principal.patient_id if role is Role.PATIENT else principal.doctor_id


def record_loader(loaders: Loaders, record: str) -> TypedLoader[ObjectId, Document | None]:
    """The request's (row-scoped) loader for a record type a Stored rule names."""
    if record == "Appointment":
        return loaders.appointment_by_id
    if record == "Prescription":
        return loaders.prescription_by_id
    if record == "Patient":
        return loaders.patient_by_id
    raise ValueError(f"no loader for {record} records")


def given_fields(value: object) -> frozenset[str]:
    """The fields of an input object the client sent, by their GraphQL names. A field
    left out is UNSET (or, declared `strawberry.Maybe`, None); MutationGuard checks at
    schema build that a policed input declares every field one of those two ways."""
    definition = get_object_definition(value, strict=True)
    return frozenset(
        graphql_name(field)
        for field in definition.fields
        if _given(getattr(value, field.python_name), field)
    )


def _given(value: object, field: StrawberryField) -> bool:
    if value is UNSET:
        return False
    return not (value is None and isinstance(field.type, StrawberryMaybe))


@dataclass(frozen=True)
class _InArgument:
    """Compiled Argument: the Python names of the argument and of its input field."""

    argument: str
    input_field: str | None
    error_field: str  # the name BadUserInput reports for a malformed id


@dataclass(frozen=True)
class _InRecord:
    """Compiled Stored: the record's loader, found by the `id` argument (Python name)."""

    record: str
    field: str
    argument: str


class MutationGuard(BasePermission):
    """One mutation's MutationRule, checked after its role check (HasRole) and before
    its resolver. Asynchronous: a Stored rule reads the record through the loaders."""

    def __init__(self, mutation: str, rule: MutationRule, field: StrawberryField) -> None:
        self.mutation = mutation
        self.arguments = {
            argument.graphql_name or to_camel_case(argument.python_name): argument
            for argument in field.arguments
        }
        self.input_fields = rule.input_fields
        self.input_argument: str | None = None
        if rule.input_fields is not None:
            definition = self._input_definition("input")
            self._check_input_fields(definition, rule)
            self.input_argument = self.arguments["input"].python_name
        self.acts_for = {role: self._compile(role, where) for role, where in rule.acts_for.items()}

    def _refuse(self, problem: str) -> ValueError:
        return ValueError(f"auth/policy.py MUTATIONS[{self.mutation!r}]: {problem}")

    def _input_definition(self, argument: str) -> StrawberryObjectDefinition:
        if argument not in self.arguments:
            raise self._refuse(f"the mutation has no argument {argument!r}")
        definition = get_object_definition(self.arguments[argument].type)
        if definition is None or not definition.is_input:
            raise self._refuse(f"argument {argument!r} is not an input object")
        return definition

    def _check_input_fields(
        self, definition: StrawberryObjectDefinition, rule: MutationRule
    ) -> None:
        names = {graphql_name(field): field for field in definition.fields}
        for role, allowed in (rule.input_fields or {}).items():
            unknown = sorted((allowed or frozenset()) - set(names))
            if unknown:
                raise self._refuse(f"{definition.name} has no field {unknown} ({role.value})")
        for name, field in names.items():
            # Absent must be told from null: a null is a change (it clears the field).
            if field.default is not UNSET and not isinstance(field.type, StrawberryMaybe):
                raise self._refuse(f"{definition.name}.{name} must default to UNSET or be Maybe")

    def _compile(self, role: Role, where: Argument | Stored) -> _InArgument | _InRecord:
        if role not in OWN_RECORD_MESSAGES:
            raise self._refuse(f"{role.value} has no record of its own to act for")
        if isinstance(where, Stored):
            if "id" not in self.arguments:
                raise self._refuse("a Stored rule needs an `id` argument")
            return _InRecord(where.record, where.field, self.arguments["id"].python_name)
        argument, _, input_field = where.path.partition(".")
        if not input_field:
            if argument not in self.arguments:
                raise self._refuse(f"the mutation has no argument {argument!r}")
            return _InArgument(self.arguments[argument].python_name, None, argument)
        definition = self._input_definition(argument)
        fields = {graphql_name(field): field.python_name for field in definition.fields}
        if input_field not in fields:
            raise self._refuse(f"{definition.name} has no field {input_field!r}")
        return _InArgument(self.arguments[argument].python_name, fields[input_field], input_field)

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal, role = info.context.principal, role_of(info)
        if principal is None or role is None:  # HasRole, checked first, refused them
            return False
        if self.input_argument is not None:
            self._require_allowed_inputs(role, kwargs[self.input_argument])
        where = self.acts_for.get(role)
        if where is not None:
            await self._require_acting_for_self(info, principal, role, where, kwargs)
        return True

    def _require_allowed_inputs(self, role: Role, value: object) -> None:
        by_role = self.input_fields or {}
        allowed = by_role.get(role, frozenset())
        if allowed is None:
            return
        refused = sorted(given_fields(value) - allowed)
        if refused:
            raise Forbidden(
                f"your role may not change {', '.join(refused)}",
                fields=refused,
                reason="INPUT_FIELD",
            )

    async def _require_acting_for_self(
        self,
        info: Info,
        principal: Principal,
        role: Role,
        where: _InArgument | _InRecord,
        kwargs: dict[str, Any],
    ) -> None:
        if isinstance(where, _InRecord):
            key = parse_id(kwargs[where.argument])
            loader = record_loader(info.context.loaders, where.record)
            record = await loader.load(key)
            # The mutation is about to change it: later reads in this request load it anew.
            loader.clear(key)
            if record is None:
                return  # out of the caller's row scope, or absent: the resolver says NOT_FOUND
            acting_for = record[where.field]
        else:
            value = kwargs[where.argument]
            if where.input_field is not None:
                value = getattr(value, where.input_field)
            if value is None:
                return
            acting_for = parse_id(value, field=where.error_field)
        if acting_for != own_record(principal, role):
            raise Forbidden(OWN_RECORD_MESSAGES[role], reason="NOT_OWN_RECORD")

    def on_unauthorized(self) -> None:
        raise Forbidden(f"your role may not use {self.mutation}", reason="ROLE")
