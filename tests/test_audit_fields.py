"""Every PHI field the policy marks, read as every role that may read it, leaves an
audit record naming that field; the list comes from the policy and the schema, so a
new PHI field is covered (or fails here) without anyone remembering this test."""

from __future__ import annotations

from graphql import GraphQLObjectType, get_named_type

from auth.policy import FIELDS, PHI_FIELDS, Anyone, field_readers
from auth.roles import Role
from tests.conftest import http_client
from tests.support import build_world, default_schema

# How a test reaches an object of each PHI-bearing type, and the roles each step admits.
PATHS = {
    "Patient": ("patient", ["Query.patient"], "{}"),
    "Contact": ("patient", ["Query.patient", "Patient.contact"], "{{ contact {} }}"),
    "Address": (
        "patient",
        ["Query.patient", "Patient.contact", "Contact.address"],
        "{{ contact {{ address {} }} }}",
    ),
    "Appointment": ("appointment", ["Query.appointment"], "{}"),
    "Prescription": ("prescription", ["Query.prescription"], "{}"),
    "Bill": ("bill", ["Query.bill"], "{}"),
}
PREFIX = {"Contact": "contact.", "Address": "contact.address."}
schema = default_schema()


def _roles(step: str) -> frozenset[Role]:
    type_name, field_name = step.split(".")
    readers = field_readers(type_name, field_name)
    return frozenset() if isinstance(readers, Anyone) else frozenset(readers)


def _leaf(type_name: str, field_name: str) -> str:
    """The field with a sub-selection if it is an object."""
    graphql_type = schema._schema.get_type(type_name)
    assert isinstance(graphql_type, GraphQLObjectType)
    named = get_named_type(graphql_type.fields[field_name].type)
    if isinstance(named, GraphQLObjectType):
        return f"{field_name} {{ {next(iter(named.fields))} }}"
    return field_name


def test_every_phi_field_is_in_the_policy_and_the_schema():
    for type_name, names in PHI_FIELDS.items():
        graphql_type = schema._schema.get_type(type_name)
        assert isinstance(graphql_type, GraphQLObjectType), type_name
        assert names <= set(graphql_type.fields), (type_name, names - set(graphql_type.fields))
        assert names <= set(FIELDS[type_name]), type_name
        assert type_name in PATHS, f"add a path to {type_name} for the audit test"


async def test_reading_each_phi_field_as_each_role_that_may_is_audited(app, client, services):
    world = await build_world(client, services)
    ids = {
        "patient": world.patient,
        "appointment": world.appointment,
        "prescription": world.prescription,
        "bill": world.bill,
    }
    resource = {
        "patient": "Patient",
        "appointment": "Appointment",
        "prescription": "Prescription",
        "bill": "Bill",
    }
    checked = 0
    for type_name, names in sorted(PHI_FIELDS.items()):
        root, steps, shape = PATHS[type_name]
        for field_name in sorted(names):
            allowed = _roles(f"{type_name}.{field_name}")
            for step in steps:
                allowed &= _roles(step)
            assert allowed, f"no role may read {type_name}.{field_name}?"
            selection = shape.format("{ " + _leaf(type_name, field_name) + " }")
            query = f"query($id: ID!) {{ {root}(id: $id) {selection} }}"
            for role in sorted(allowed, key=lambda r: r.value):
                last = await services.db["audit_log"].find_one({}, sort=[("seq", -1)])
                since = last["seq"] if last else 0
                async with http_client(app, world.tokens[role]) as caller:
                    body = await caller.post(query, {"id": ids[root]})
                assert "errors" not in body, (role, query, body)
                records = await services.db["audit_log"].find({"seq": {"$gt": since}}).to_list()
                label = PREFIX.get(type_name, "") + field_name
                matching = [
                    entity
                    for record in records
                    if record["action"] == "READ"
                    and record["outcome"] == "SUCCESS"
                    and record["actor"]["role"] == role.value
                    for entity in record["entities"]
                    if entity["resourceType"] == resource[root]
                    and entity["recordId"] == ids[root]
                    and label in entity["fields"]
                ]
                assert matching, (role.value, type_name, field_name, records)
                checked += 1
    assert checked >= 60  # ~35 fields, up to four roles each
