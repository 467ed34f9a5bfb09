"""The access policy table covers the whole schema, is consistent, and is what the API
does: every field, for every role, through real HTTP requests with real tokens."""

from __future__ import annotations

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    get_named_type,
)
from graphql.pyutils import Undefined

from auth.policy import PUBLIC, Anyone, field_readers, type_readers
from auth.roles import Role
from tests.conftest import http_client
from tests.support import World, default_schema, issue_token

schema = default_schema()

GRAPHQL = schema._schema
OBJECT_TYPES = {
    name: definition
    for name, definition in GRAPHQL.type_map.items()
    if isinstance(definition, GraphQLObjectType) and not name.startswith("__")
}
ROLES = list(Role)


def _allowed(roles, role: Role | None) -> bool:
    if isinstance(roles, Anyone):
        return True
    return role is not None and role in roles


def _returned_object_types(field) -> list[str]:
    named = get_named_type(field.type)
    if isinstance(named, GraphQLUnionType):
        return [member.name for member in named.types]
    return [named.name] if isinstance(named, GraphQLObjectType) else []


# -- the table against the schema ---------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(OBJECT_TYPES))
def test_every_field_is_covered_by_the_policy(type_name):
    for field_name in OBJECT_TYPES[type_name].fields:
        try:
            field_readers(type_name, field_name)
        except KeyError:
            pytest.fail(f"auth/policy.py does not say who may read {type_name}.{field_name}")


def test_the_policy_names_no_field_the_schema_lacks():
    from auth.policy import FIELDS

    for type_name, fields in FIELDS.items():
        assert type_name in OBJECT_TYPES, type_name
        stale = set(fields) - set(OBJECT_TYPES[type_name].fields)
        assert not stale, f"{type_name}: {sorted(stale)}"


def test_every_mutation_has_a_rule_and_every_rule_a_mutation():
    """No mutation is left to its resolver to police: each has an entry in MUTATIONS
    (NO_RULE when the role check is all it needs), attached at schema build."""
    from auth.policy import MUTATIONS

    mutations = set(OBJECT_TYPES["Mutation"].fields)
    assert not mutations - set(MUTATIONS), (
        f"no MUTATIONS rule: {sorted(mutations - set(MUTATIONS))}"
    )
    assert not set(MUTATIONS) - mutations, f"no such mutation: {sorted(set(MUTATIONS) - mutations)}"


def test_mutation_rules_name_only_roles_that_may_call_the_mutation():
    from auth.policy import MUTATIONS

    for name, rule in MUTATIONS.items():
        callers = field_readers("Mutation", name)
        named = set(rule.input_fields or {}) | set(rule.acts_for)
        assert not isinstance(callers, Anyone) or not named, name
        assert isinstance(callers, Anyone) or named <= callers, (name, named - set(callers))


@pytest.mark.parametrize("type_name", sorted(OBJECT_TYPES))
def test_no_field_opens_a_door_its_type_keeps_shut(type_name):
    """A field's readers must be readers of its type, and of the type it returns:
    otherwise a role could reach an object the table says it may not hold."""
    root = type_name in ("Query", "Mutation")
    holders = None if root else type_readers(type_name)
    for field_name, field in OBJECT_TYPES[type_name].fields.items():
        roles = field_readers(type_name, field_name)
        if holders is not None and not isinstance(holders, Anyone):
            assert not isinstance(roles, Anyone) and roles <= holders, f"{type_name}.{field_name}"
        for returned in _returned_object_types(field):
            readers = type_readers(returned)
            if isinstance(readers, Anyone):
                continue
            assert not isinstance(roles, Anyone) and roles <= readers, (
                f"{type_name}.{field_name} hands {returned} to roles that may not read it"
            )


# -- the matrix over HTTP ------------------------------------------------------------------


# How to reach an object of each type from the root: (root field with arguments, path).
def _routes(world: World) -> dict[str, list[tuple[str, str]]]:
    return {
        "Patient": [(f'patient(id: "{world.patient}")', "patient")],
        "Contact": [(f'patient(id: "{world.patient}")', "patient"), ("contact", "contact")],
        "Address": [
            (f'patient(id: "{world.patient}")', "patient"),
            ("contact", "contact"),
            ("address", "address"),
        ],
        "Doctor": [(f'doctor(id: "{world.doctor}")', "doctor")],
        "AvailabilityWindow": [
            (f'doctor(id: "{world.doctor}")', "doctor"),
            ("availability", "availability"),
        ],
        "Appointment": [(f'appointment(id: "{world.appointment}")', "appointment")],
        "Prescription": [(f'prescription(id: "{world.prescription}")', "prescription")],
        "Dosage": [
            (f'prescription(id: "{world.prescription}")', "prescription"),
            ("dosage", "dosage"),
        ],
        "Bill": [(f'bill(id: "{world.bill}")', "bill")],
        "PageInfo": [("doctors", "doctors"), ("pageInfo", "pageInfo")],
        "User": [("me", "me")],
    }


def _selection(field) -> str:
    named = get_named_type(field.type)
    return " { __typename }" if isinstance(named, GraphQLObjectType | GraphQLUnionType) else ""


def _expected_denial(route_roles: list[tuple[str, object]], role: Role | None):
    """The path of the first field along the route the role may not read, or None."""
    path: list[str] = []
    for name, roles in route_roles:
        path.append(name)
        if not _allowed(roles, role):
            return path
    return None


MATRIX_TYPES = [
    "Patient",
    "Contact",
    "Address",
    "Doctor",
    "AvailabilityWindow",
    "Appointment",
    "Prescription",
    "Dosage",
    "Bill",
    "PageInfo",
    "User",
]


@pytest.mark.parametrize("type_name", MATRIX_TYPES)
async def test_every_field_for_every_role_over_http(app, world, type_name):
    route = _routes(world)[type_name]
    parent_types = ["Query"]
    for _, name in route[:-1]:
        parent_types.append(get_named_type(OBJECT_TYPES[parent_types[-1]].fields[name].type).name)
    route_roles = [
        (name, field_readers(parent, name))
        for (_, name), parent in zip(route, parent_types, strict=True)
    ]
    fields = OBJECT_TYPES[type_name].fields
    for role in [*ROLES, None]:
        token = world.tokens.get(role) if role else None
        async with http_client(app, token) as client:
            for field_name, field in fields.items():
                query = (
                    "{ "
                    + " { ".join(call for call, _ in route)
                    + " { "
                    + field_name
                    + _selection(field)
                    + " }" * (len(route) + 1)
                )
                body = await client.post(query)
                errors = body.get("errors", [])
                denied_at = _expected_denial(
                    [*route_roles, (field_name, field_readers(type_name, field_name))], role
                )
                who = role.value if role else "anonymous"
                if denied_at is None:
                    assert not errors, (who, query, errors)
                    continue
                expected_code = "UNAUTHENTICATED" if role is None else "FORBIDDEN"
                match = [
                    e
                    for e in errors
                    if e["path"][: len(denied_at)] == denied_at
                    or [p for p in e["path"] if isinstance(p, str)] == denied_at
                ]
                assert match and match[0]["extensions"]["code"] == expected_code, (
                    who,
                    query,
                    denied_at,
                    errors,
                )


def _dummy(type_) -> object:
    """A well-formed value of an input type (it need not name anything that exists)."""
    if isinstance(type_, GraphQLNonNull):
        return _dummy(type_.of_type)
    if isinstance(type_, GraphQLList):
        return []
    if isinstance(type_, GraphQLEnumType):
        return next(iter(type_.values))
    if isinstance(type_, GraphQLInputObjectType):
        return {
            name: _dummy(field.type)
            for name, field in type_.fields.items()
            if isinstance(field.type, GraphQLNonNull) and field.default_value is Undefined
        }
    assert isinstance(type_, GraphQLScalarType)
    return {
        "ID": "0" * 24,
        "String": "x",
        "Int": 30,
        "Float": 1.0,
        "Boolean": False,
        "Date": "2030-01-01",
        "DateTime": "2030-01-07T10:00:00Z",
        "Time": "10:00:00",
        "Decimal": "1.00",
    }[type_.name]


@pytest.mark.parametrize("field_name", sorted(OBJECT_TYPES["Mutation"].fields))
async def test_every_mutation_for_every_role_over_http(app, services, world, field_name):
    field = OBJECT_TYPES["Mutation"].fields[field_name]
    required = {
        name: arg for name, arg in field.args.items() if isinstance(arg.type, GraphQLNonNull)
    }
    declarations = ", ".join(f"${name}: {arg.type}" for name, arg in required.items())
    arguments = ", ".join(f"{name}: ${name}" for name in required)
    query = (
        f"mutation{f'({declarations})' if declarations else ''} "
        f"{{ {field_name}{f'({arguments})' if arguments else ''}{_selection(field)} }}"
    )
    variables = {name: _dummy(arg.type) for name, arg in required.items()}
    roles = field_readers("Mutation", field_name)
    for role in [*ROLES, None]:
        # A fresh account per call: logout and changePassword end the caller's sessions.
        token = await issue_token(services, role) if role else None
        async with http_client(app, token) as client:
            body = await client.post(query, variables)
        codes = [e["extensions"]["code"] for e in body.get("errors", [])]
        reasons = [e["extensions"].get("reason") for e in body.get("errors", [])]
        who = role.value if role else "anonymous"
        if _allowed(roles, role):
            # Object-level refusals (not their record) are fine here; a role refusal is not.
            assert "ROLE" not in reasons and "MFA_REQUIRED" not in reasons, (who, field_name, body)
            if role is None:
                continue
            assert "INTERNAL_SERVER_ERROR" not in codes, (who, field_name, body)
        else:
            assert reasons == [None] if role is None else reasons == ["ROLE"], body
            assert codes == ["UNAUTHENTICATED" if role is None else "FORBIDDEN"], (
                who,
                field_name,
                body,
            )
    assert roles is PUBLIC or isinstance(roles, frozenset)


# -- the README's copy of the table ---------------------------------------------------------


def test_the_readme_role_table_is_the_policy_table():
    from auth import policy_doc

    assert policy_doc.readme_block(policy_doc.README.read_text()) == policy_doc.render(), (
        "README.md's role table is stale: run `.venv/bin/python -m auth.policy_doc`"
    )


def test_the_readme_role_table_follows_a_policy_change(monkeypatch):
    from auth import policy, policy_doc

    monkeypatch.setitem(policy.FIELDS["Patient"], "age", frozenset({Role.ADMIN}))
    pharmacist = next(
        line for line in policy_doc.render().splitlines() if line.startswith("| PHARMACIST")
    )
    assert "`Patient.age`" in pharmacist
