"""The mutation rules of auth/policy.py (MUTATIONS), attached at schema build: each party
changes only their own appointments, whatever the row scopes would let through, and a
table that does not fit the schema refuses to build."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from auth import policy
from auth.policy import MUTATIONS, ROW_SCOPES, Argument, MutationRule, Scope
from auth.roles import Role
from schema import POLICED_TYPES, Mutation, apply_access_policy
from tests.conftest import http_client
from tests.factories import book, create_doctor, create_patient, future_slot, iso
from tests.support import GraphQLClient, issue_token

CHANGES = {
    "cancelAppointment": 'mutation($id: ID!) { cancelAppointment(id: $id, reason: "Away") '
    "{ __typename } }",
    "completeAppointment": "mutation($id: ID!) { completeAppointment(id: $id) { __typename } }",
    "rescheduleAppointment": "mutation($id: ID!, $start: DateTime!) { rescheduleAppointment("
    "id: $id, start: $start) { __typename } }",
    "updateAppointment": 'mutation($id: ID!) { updateAppointment(id: $id, input: {reason: "Cough"})'
    " { __typename } }",
}
# Who may call each (FIELDS["Mutation"]): patients do not complete visits.
PARTIES = [
    (mutation, role)
    for mutation in sorted(CHANGES)
    for role in (Role.PATIENT, Role.DOCTOR)
    if not (mutation == "completeAppointment" and role is Role.PATIENT)
]


@dataclass
class Party:
    patient: str
    doctor: str
    appointment: str


@pytest.fixture
async def parties(client: GraphQLClient) -> tuple[Party, Party]:
    made = []
    for name, hour in (("Alice", 9), ("Bob", 11)):
        patient = (await create_patient(client, givenName=name))["id"]
        doctor = (await create_doctor(client, givenName=f"Dr{name}"))["id"]
        appointment = await book(client, {"id": patient}, {"id": doctor}, future_slot(hour=hour))
        made.append(Party(patient, doctor, appointment["id"]))
    return made[0], made[1]


async def _as(services, role: Role, party: Party | None) -> str:
    return await issue_token(
        services,
        role,
        patient_id=ObjectId(party.patient) if party and role is Role.PATIENT else None,
        doctor_id=ObjectId(party.doctor) if party and role is Role.DOCTOR else None,
    )


async def _change(app, token: str, mutation: str, appointment: str) -> dict:
    variables = {"id": appointment}
    if mutation == "rescheduleAppointment":
        variables["start"] = iso(future_slot(days=3, hour=14))
    async with http_client(app, token) as caller:
        return await caller.post(CHANGES[mutation], variables)


@pytest.mark.parametrize(("mutation", "role"), [*PARTIES, *((m, Role.ADMIN) for m in CHANGES)])
async def test_each_party_changes_their_own_appointments(app, services, parties, mutation, role):
    alice, _ = parties
    if mutation == "completeAppointment":  # a visit is completed once it has started
        started = datetime.now(UTC) - timedelta(hours=1)
        await services.db.appointments.update_one(
            {"_id": ObjectId(alice.appointment)}, {"$set": {"start": started}}
        )
    body = await _change(app, await _as(services, role, alice), mutation, alice.appointment)
    assert "errors" not in body, body
    assert body["data"][mutation]["__typename"] == "Appointment"


@pytest.mark.parametrize(("mutation", "role"), PARTIES)
async def test_another_partys_appointment_is_not_found(app, services, parties, mutation, role):
    alice, bob = parties
    before = await services.db.appointments.find_one({"_id": ObjectId(bob.appointment)})
    body = await _change(app, await _as(services, role, alice), mutation, bob.appointment)
    assert [e["extensions"]["code"] for e in body["errors"]] == ["NOT_FOUND"]
    assert await services.db.appointments.find_one({"_id": ObjectId(bob.appointment)}) == before


@pytest.mark.parametrize(("mutation", "role"), PARTIES)
async def test_the_rule_holds_where_a_wider_row_scope_shows_the_record(
    app, services, parties, monkeypatch, mutation, role
):
    """The row scope hides another party's appointment; the mutation rule does not lean
    on it: with the scope widened, the change is still refused as not theirs."""
    alice, bob = parties
    monkeypatch.setitem(ROW_SCOPES["appointments"], role, Scope.ALL)
    before = await services.db.appointments.find_one({"_id": ObjectId(bob.appointment)})
    body = await _change(app, await _as(services, role, alice), mutation, bob.appointment)
    assert [e["extensions"] for e in body["errors"]] == [
        {"code": "FORBIDDEN", "reason": "NOT_OWN_RECORD"}
    ]
    assert await services.db.appointments.find_one({"_id": ObjectId(bob.appointment)}) == before


# -- the table against the schema, at build --------------------------------------------------


def _extensions() -> dict[str, list[object]]:
    from strawberry.types.base import get_object_definition

    return {
        field.python_name: list(field.extensions)
        for field in get_object_definition(Mutation, strict=True).fields
    }


def test_a_mutation_without_a_rule_refuses_the_build_and_changes_nothing(monkeypatch):
    before = _extensions()
    monkeypatch.delitem(MUTATIONS, "cancelAppointment")
    with pytest.raises(ValueError, match="no rule for the mutation 'cancelAppointment'"):
        apply_access_policy(POLICED_TYPES)
    assert _extensions() == before


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (MutationRule(input_fields={Role.ADMIN: frozenset({"nope"})}), "has no field"),
        (MutationRule(acts_for={Role.DOCTOR: Argument("input.nope")}), "has no field 'nope'"),
        (MutationRule(acts_for={Role.DOCTOR: Argument("nope")}), "no argument 'nope'"),
        (MutationRule(acts_for={Role.ADMIN: Argument("id")}), "no record of its own"),
    ],
)
def test_a_rule_naming_what_the_mutation_lacks_refuses_the_build(monkeypatch, rule, problem):
    monkeypatch.setitem(policy.MUTATIONS, "updateAppointment", rule)
    with pytest.raises(ValueError, match=problem):
        apply_access_policy(POLICED_TYPES)
