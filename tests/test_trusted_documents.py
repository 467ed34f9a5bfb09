"""Every trusted document in queries/ against the access policy: which roles it is meant
for, which roles can run it fully, which only in part, and proof over HTTP.

The static half walks each document's selections (through fragments and union members)
and asks auth/policy.py, the way schema.apply_access_policy and auth.permissions.HasRole
use it, whether a caller may read each selected field. The dynamic half runs each
document by `documentId` for every role it is meant for, with a real token bound to real
records, in the persisted-only document mode production uses.

A caller is a role, or one of two session states the policy treats apart: no access
token at all (signing in or up), and an ADMIN account before its second factor, which
may only use the fields in ALLOWED_BEFORE_MFA.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pyotp
import pytest
from bson import ObjectId
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    parse,
)
from starlette.applications import Starlette
from strawberry.permission import PermissionExtension
from strawberry.types.base import get_object_definition
from strawberry.types.private import is_private

from auth import policy
from auth.passwords import hash_password
from auth.permissions import HasRole
from auth.policy import ALLOWED_BEFORE_MFA, Anyone, field_readers, type_readers
from auth.roles import Role
from datasources.scope import AccessScope
from datasources.users import RefreshTokenStore, UserStore
from runtime.services import Services
from schema import POLICED_TYPES, ROOT_TYPES, _graphql_name
from settings import PERSISTED_ONLY
from tests.conftest import http_client
from tests.factories import future_slot, iso
from tests.support import (
    WORLD_APPOINTMENT_DAYS,
    GraphQLClient,
    World,
    default_schema,
    issue_token,
    settings_for_test,
)

PATIENT, DOCTOR, PHARMACIST, ANALYST, ADMIN = (
    Role.PATIENT,
    Role.DOCTOR,
    Role.PHARMACIST,
    Role.ANALYST,
    Role.ADMIN,
)


class Session(Enum):
    ANONYMOUS = "ANONYMOUS"  # no access token: signing in, signing up
    ADMIN_BEFORE_MFA = "ADMIN_BEFORE_MFA"  # an ADMIN account without a second factor yet


ANONYMOUS, ADMIN_BEFORE_MFA = Session.ANONYMOUS, Session.ADMIN_BEFORE_MFA
Caller = Role | Session
CALLERS: tuple[Caller, ...] = (PATIENT, DOCTOR, PHARMACIST, ANALYST, ADMIN, ANONYMOUS,
                               ADMIN_BEFORE_MFA)  # fmt: skip

EVERY_ROLE: frozenset[Caller] = frozenset(Role)
SIGNED_IN: frozenset[Caller] = EVERY_ROLE | {ADMIN_BEFORE_MFA}
EVERYONE: frozenset[Caller] = SIGNED_IN | {ANONYMOUS}
REPORTS: frozenset[Caller] = frozenset({ANALYST, ADMIN})
BOOKING: frozenset[Caller] = frozenset({PATIENT, DOCTOR, ADMIN})
# Anyone may set up a second factor; admins must before they act as admins.
MFA_SETUP: frozenset[Caller] = frozenset({PATIENT, DOCTOR, PHARMACIST, ANALYST, ADMIN_BEFORE_MFA})

# Who each document is for: from what it is for (its first-line comment), not from the
# policy. A new file in queries/ must be added here.
MEANT_FOR: dict[str, frozenset[Caller]] = {
    "AppointmentsWithBills": frozenset({ADMIN, PATIENT}),
    "AveragePrescriptionCostByDisease": REPORTS,
    "BenchmarkAppointments": frozenset({ADMIN}),  # benchmarks sign in as an admin
    "BookAppointment": BOOKING,
    "CancelAppointment": BOOKING,
    "ChangePassword": SIGNED_IN,
    "CompleteAppointment": frozenset({DOCTOR}),
    "ConfirmMfa": MFA_SETUP,
    "DiseaseTreatmentDurations": REPORTS,
    "DoctorSchedule": frozenset({DOCTOR, ADMIN}),
    "EnrollMfa": MFA_SETUP,
    "FindDoctors": frozenset({PATIENT, ADMIN}),
    "Login": frozenset({ANONYMOUS}),
    "Logout": SIGNED_IN,
    "Me": SIGNED_IN,
    "MonthlyAppointmentTrend": REPORTS,
    "MyAccessLog": frozenset({PATIENT}),
    "MyAppointments": frozenset({PATIENT}),
    "PatientBills": frozenset({ADMIN, PATIENT}),
    "PatientChart": frozenset({DOCTOR, ADMIN, PATIENT, PHARMACIST}),
    "PrescribeMedication": frozenset({DOCTOR}),
    "PrescriptionList": frozenset({PHARMACIST, DOCTOR, PATIENT}),
    # Medication safety: the pharmacist's screens and the doctor's prescribing.
    "PharmacyQueue": frozenset({PHARMACIST}),
    "MedicationProfile": frozenset({PHARMACIST, DOCTOR}),
    "CheckMedicationSafety": frozenset({DOCTOR, PHARMACIST}),
    "PrescribeWithOverride": frozenset({DOCTOR}),
    "VerifyPrescription": frozenset({PHARMACIST}),
    "RejectPrescription": frozenset({PHARMACIST}),
    "DispensePrescription": frozenset({PHARMACIST}),
    "RefreshToken": SIGNED_IN,
    "Register": frozenset({ANONYMOUS}),
    "RescheduleAppointment": BOOKING,
    "TopDoctors": REPORTS,
    "VerifyEmail": frozenset({ANONYMOUS}),
}

# Who can run each document with no field refused, as the policy stands (computed below
# and compared, so a policy change that narrows or widens a document shows as a diff).
RUNS_FULLY: dict[str, frozenset[Caller]] = {
    "AppointmentsWithBills": frozenset({ADMIN, PATIENT}),
    "AveragePrescriptionCostByDisease": REPORTS,
    "BenchmarkAppointments": frozenset({ADMIN, PATIENT}),
    "BookAppointment": frozenset({ADMIN, PATIENT, DOCTOR}),
    "CancelAppointment": frozenset({ADMIN, PATIENT, DOCTOR}),
    "ChangePassword": SIGNED_IN,
    "CompleteAppointment": frozenset({ADMIN, DOCTOR}),
    "ConfirmMfa": SIGNED_IN,
    "DiseaseTreatmentDurations": REPORTS,
    "DoctorSchedule": frozenset({ADMIN, PATIENT, DOCTOR}),
    "EnrollMfa": SIGNED_IN,
    "FindDoctors": frozenset({ADMIN, PATIENT, DOCTOR, PHARMACIST}),
    "Login": EVERYONE,
    "Logout": SIGNED_IN,
    "Me": SIGNED_IN,
    "MonthlyAppointmentTrend": REPORTS,
    "MyAccessLog": frozenset({PATIENT}),
    "MyAppointments": frozenset({ADMIN, PATIENT}),
    "PatientBills": frozenset({ADMIN, PATIENT}),
    "PatientChart": frozenset({ADMIN, PATIENT, DOCTOR}),
    "PrescribeMedication": frozenset({ADMIN, DOCTOR}),
    "PrescriptionList": frozenset({ADMIN, PATIENT, DOCTOR, PHARMACIST}),
    "PharmacyQueue": frozenset({PHARMACIST}),
    "MedicationProfile": frozenset({ADMIN, DOCTOR, PHARMACIST}),
    "CheckMedicationSafety": frozenset({DOCTOR, PHARMACIST}),
    "PrescribeWithOverride": frozenset({ADMIN, DOCTOR}),
    "VerifyPrescription": frozenset({PHARMACIST}),
    "RejectPrescription": frozenset({PHARMACIST}),
    "DispensePrescription": frozenset({PHARMACIST}),
    "RefreshToken": EVERYONE,
    "Register": EVERYONE,
    "RescheduleAppointment": frozenset({ADMIN, PATIENT, DOCTOR}),
    "TopDoctors": REPORTS,
    "VerifyEmail": EVERYONE,
}

# Roles a document is meant for that get it only in part: the listed fields come back
# null with a FORBIDDEN error, the rest arrives. Each entry is a product decision, not an
# accident: a pharmacist checks prescriptions against the chart's allergies and
# conditions but sees no contact details and no visits (auth/policy.py, Patient).
PARTIAL: dict[str, dict[Caller, frozenset[str]]] = {
    # Minimum necessary: pharmacists check with the age, not the birth date.
    "PatientChart": {
        PHARMACIST: frozenset({"patient.birthDate", "patient.contact", "patient.appointments"})
    },
}

QUERIES = Path(__file__).resolve().parent.parent / "queries"
schema = default_schema()
GRAPHQL = schema._schema
ROOTS = {"query": GRAPHQL.query_type, "mutation": GRAPHQL.mutation_type}


def _order(caller: Caller) -> int:
    return CALLERS.index(caller)


def _names(callers) -> list[str]:
    return [caller.value for caller in sorted(callers, key=_order)]


@dataclass(frozen=True)
class TrustedFile:
    name: str
    text: str

    @property
    def document(self) -> DocumentNode:
        return parse(self.text)

    @property
    def document_id(self) -> str:
        # The SHA-256 of the file's exact bytes: what a client's manifest says.
        return "sha256:" + hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def trusted_files() -> dict[str, TrustedFile]:
    return {
        path.stem: TrustedFile(path.stem, path.read_bytes().decode("utf-8"))
        for path in sorted(QUERIES.glob("*.graphql"))
    }


FILES = trusted_files()


# -- the policy, as the schema applies it ------------------------------------------------


def attached_check(type_name: str, field_name: str):
    """The role check schema.apply_access_policy attaches to a field: (readers, allowed
    before MFA), or None where it attaches none (whoever holds the object reads the
    field; the field that returned the object was checked)."""
    readers = field_readers(type_name, field_name)
    if type_name not in ROOT_TYPES and readers == type_readers(type_name):
        return None
    return readers, field_name in ALLOWED_BEFORE_MFA


def may_read(caller: Caller, type_name: str, field_name: str) -> bool:
    """What auth.permissions.HasRole answers for this caller."""
    check = attached_check(type_name, field_name)
    if check is None:
        return True
    readers, before_mfa = check
    if isinstance(readers, Anyone):
        return True
    if caller is ANONYMOUS:
        return False  # UNAUTHENTICATED
    if caller is ADMIN_BEFORE_MFA:
        return before_mfa and ADMIN in readers  # else FORBIDDEN, reason MFA_REQUIRED
    return caller in readers


# -- the walk -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    # The outermost selected fields the caller may not read, by response path ("patient.
    # contact"; list indices left out) -> "Type.field". Nothing under them runs.
    refused: dict[str, str] = field(default_factory=dict)
    # Whether anything but nulls comes back: a refused non-null field nulls its parent,
    # and so on up to the first nullable field.
    returns_data: bool = True

    @property
    def full(self) -> bool:
        return not self.refused

    @property
    def partial(self) -> bool:
        return bool(self.refused) and self.returns_data


def _selected(
    selection_set: SelectionSetNode, parent, fragments: dict[str, FragmentDefinitionNode]
) -> Iterator[tuple[Any, FieldNode]]:
    """(the type that owns the field, the field) for every field selected, with inline
    fragments and fragment spreads (union members included) expanded."""
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield parent, selection
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            owner = GRAPHQL.get_type(condition.name.value) if condition else parent
            yield from _selected(selection.selection_set, owner, fragments)
        else:
            assert isinstance(selection, FragmentSpreadNode), selection
            fragment = fragments[selection.name.value]
            owner = GRAPHQL.get_type(fragment.type_condition.name.value)
            yield from _selected(fragment.selection_set, owner, fragments)


def _null_fills_value(type_) -> bool:
    """Whether a null object inside a field's value (an item, for lists) makes the whole
    value null: only when every list level holds non-null items."""
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        return isinstance(type_.of_type, GraphQLNonNull) and _null_fills_value(type_.of_type)
    return True


def _field_is_null(caller, owner, node: FieldNode, path: str, fragments, refused) -> bool:
    """Record the refused fields at and under this selected field; True when its value
    comes back null because of them."""
    name = node.name.value
    assert isinstance(owner, GraphQLObjectType), f"{owner}.{name}"
    field_type = owner.fields[name].type
    key = ".".join(filter(None, [path, node.alias.value if node.alias else name]))
    if not may_read(caller, owner.name, name):
        refused[key] = f"{owner.name}.{name}"
        return True
    if node.selection_set is None:
        return False
    inner = get_named_type(field_type)
    nulled = _nulls_holder(caller, node.selection_set, inner, key, fragments, refused)
    return nulled and _null_fills_value(field_type)


def _nulls_holder(caller, selection_set, parent, path, fragments, refused) -> bool:
    """Whether a refused field under `selection_set` nulls the object that holds it."""
    nulls = False
    for owner, node in _selected(selection_set, parent, fragments):
        if node.name.value.startswith("__"):
            continue  # __typename: answered by the executor, no permission
        if _field_is_null(caller, owner, node, path, fragments, refused):
            nulls |= isinstance(owner.fields[node.name.value].type, GraphQLNonNull)
    return nulls


def analyse(document: DocumentNode, caller: Caller) -> Verdict:
    (operation,) = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    root = ROOTS[operation.operation.value]
    refused: dict[str, str] = {}
    root_fields = [
        (owner, node)
        for owner, node in _selected(operation.selection_set, root, fragments)
        if not node.name.value.startswith("__")
    ]
    nulls = [_field_is_null(caller, o, n, "", fragments, refused) for o, n in root_fields]
    # A null non-null root field nulls `data` itself.
    data_null = any(
        null and isinstance(owner.fields[node.name.value].type, GraphQLNonNull)
        for null, (owner, node) in zip(nulls, root_fields, strict=True)
    )
    return Verdict(refused, returns_data=not data_null and not all(nulls))


def verdicts(files: dict[str, TrustedFile]) -> dict[str, dict[Caller, Verdict]]:
    return {
        name: {caller: analyse(file.document, caller) for caller in CALLERS}
        for name, file in files.items()
    }


def runs_fully(table) -> dict[str, list[str]]:
    return {
        name: _names(c for c, verdict in by_caller.items() if verdict.full)
        for name, by_caller in table.items()
    }


def partial_runs(table, meant_for) -> dict[str, dict[str, list[str]]]:
    """Per document, the roles it is meant for that get it only in part, and what they
    are refused."""
    found = {}
    for name, by_caller in table.items():
        partial = {
            caller.value: sorted(by_caller[caller].refused)
            for caller in sorted(meant_for.get(name, ()), key=_order)
            if by_caller[caller].partial
        }
        if partial:
            found[name] = partial
    return found


def _refusals(verdict: Verdict) -> str:
    return ", ".join(f"{path} ({where})" for path, where in sorted(verdict.refused.items()))


def policy_gaps(table, meant_for) -> list[str]:
    """Documents no caller they are meant for can run fully, and meant-for callers who
    would get nothing but refusals; each names the document, the callers and the fields
    each one is refused."""
    gaps = []
    for name, by_caller in sorted(table.items()):
        callers = meant_for[name]
        ordered = sorted(callers, key=_order)
        if not any(by_caller[caller].full for caller in callers):
            gaps.append(
                f"{name} is meant for {_names(callers)} but none of them can run it fully:\n"
                + "\n".join(f"  {c.value} is refused {_refusals(by_caller[c])}" for c in ordered)
            )
        for caller in ordered:
            if not by_caller[caller].full and not by_caller[caller].returns_data:
                gaps.append(
                    f"{name} is meant for {caller.value}, who would get only refusals: "
                    f"{_refusals(by_caller[caller])}"
                )
    return gaps


# -- the tables -------------------------------------------------------------------------


def test_the_tables_cover_exactly_the_files_in_queries():
    assert sorted(MEANT_FOR) == sorted(FILES), "add every file in queries/ to MEANT_FOR"
    assert sorted(RUNS_FULLY) == sorted(FILES)
    assert set(PARTIAL) <= set(FILES)


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_document_says_who_uses_it_and_why(name):
    first_line = FILES[name].text.splitlines()[0]
    assert first_line.startswith("# ") and len(first_line) > 20, (
        f"{name}.graphql: start with a `#` comment saying who uses it and for what"
    )


def test_the_model_matches_the_checks_the_schema_attached():
    """may_read() reads the policy the way the schema does: the same fields carry a
    check, with the same readers and the same pre-MFA allowance."""
    policed = set()
    for object_type in POLICED_TYPES:
        definition = get_object_definition(object_type, strict=True)
        policed.add(definition.name)
        for strawberry_field in definition.fields:
            if is_private(strawberry_field.type):
                continue
            name = _graphql_name(strawberry_field)
            attached = [
                permission
                for extension in strawberry_field.extensions
                if isinstance(extension, PermissionExtension)
                for permission in extension.permissions
                if isinstance(permission, HasRole)
            ]
            expected = attached_check(definition.name, name)
            if expected is None:
                assert not attached, f"{definition.name}.{name}"
            else:
                (permission,) = attached
                assert (permission.roles, permission.allow_before_mfa) == expected, (
                    f"{definition.name}.{name}"
                )
    for name, graphql_type in GRAPHQL.type_map.items():
        if isinstance(graphql_type, GraphQLObjectType) and not name.startswith("__"):
            if name not in policed:  # connections and edges: read as their nodes are
                for field_name in graphql_type.fields:
                    assert attached_check(name, field_name) is None, f"{name}.{field_name}"


def test_who_can_run_each_document_fully():
    assert runs_fully(verdicts(FILES)) == {
        name: _names(callers) for name, callers in sorted(RUNS_FULLY.items())
    }


def test_every_document_runs_fully_for_a_role_it_is_meant_for():
    table = verdicts(FILES)
    for name, callers in MEANT_FOR.items():
        assert RUNS_FULLY[name] & callers, f"{name}: meant for {_names(callers)}, run by none"
    gaps = policy_gaps(table, MEANT_FOR)
    assert not gaps, "\n".join(gaps)


def test_partial_runs_are_the_listed_product_decisions():
    found = partial_runs(verdicts(FILES), MEANT_FOR)
    print("\nMeant for, but run only in part (fields null + FORBIDDEN):")
    for name, by_caller in found.items():
        for caller, refused in by_caller.items():
            print(f"  {name}: {caller} is refused {', '.join(refused)}")
    assert found == {
        name: {caller.value: sorted(refused) for caller, refused in by_caller.items()}
        for name, by_caller in PARTIAL.items()
    }


# -- the analysis can fail ---------------------------------------------------------------


def test_a_report_no_intended_role_may_read_is_reported(monkeypatch):
    monkeypatch.setitem(policy.FIELDS["Query"], "topDoctors", frozenset({PATIENT}))
    table = verdicts(FILES)
    assert "ANALYST" not in runs_fully(table)["TopDoctors"]
    gaps = [gap for gap in policy_gaps(table, MEANT_FOR) if gap.startswith("TopDoctors")]
    assert gaps[0] == (
        "TopDoctors is meant for ['ANALYST', 'ADMIN'] but none of them can run it fully:\n"
        "  ANALYST is refused topDoctors (Query.topDoctors)\n"
        "  ADMIN is refused topDoctors (Query.topDoctors)"
    )
    assert len(gaps) == 3  # and each of them gets nothing but the refusal
    assert not [gap for gap in policy_gaps(table, MEANT_FOR) if not gap.startswith("TopDoctors")]


def test_a_narrowed_nested_field_shows_in_the_tables(monkeypatch):
    # Patient.contact is nullable: refusing it to doctors and patients leaves them the
    # rest of the chart, which only the RUNS_FULLY and PARTIAL tables would show.
    monkeypatch.setitem(policy.FIELDS["Patient"], "contact", frozenset({ADMIN}))
    table = verdicts(FILES)
    assert runs_fully(table)["PatientChart"] == ["ADMIN"]
    assert partial_runs(table, MEANT_FOR)["PatientChart"] == {
        "PATIENT": ["patient.contact"],
        "DOCTOR": ["patient.contact"],
        "PHARMACIST": ["patient.appointments", "patient.birthDate", "patient.contact"],
    }
    assert not policy_gaps(table, MEANT_FOR)  # ADMIN still runs it fully


def test_a_refused_non_null_field_empties_its_parent(monkeypatch):
    # Patient.name is String!: refusing it nulls the patient, and the chart is empty.
    monkeypatch.setitem(policy.FIELDS["Patient"], "name", frozenset({ADMIN}))
    gaps = policy_gaps(verdicts({"PatientChart": FILES["PatientChart"]}), MEANT_FOR)
    prefix = "PatientChart is meant for {}, who would get only refusals: "
    assert gaps == [
        prefix.format("PATIENT") + "patient.name (Patient.name)",
        prefix.format("DOCTOR") + "patient.name (Patient.name)",
        prefix.format("PHARMACIST") + "patient.appointments (Patient.appointments), "
        "patient.birthDate (Patient.birthDate), patient.contact (Patient.contact), "
        "patient.name (Patient.name)",
    ]


def test_the_walk_follows_fragments_and_union_members():
    chart = parse(
        """query Walk($id: ID!) { patient(id: $id) { ...Chart } }
        fragment Chart on Patient {
          name contact { phone } bills { nodes { totalCost } }
          visits: appointments { nodes { ... on Appointment { bill { paid } } } }
        }"""
    )
    assert analyse(chart, PATIENT) == Verdict({}, True)
    assert analyse(chart, DOCTOR).refused == {
        "patient.bills": "Patient.bills",
        "patient.visits.nodes.bill": "Appointment.bill",
    }
    assert analyse(chart, PHARMACIST).refused == {
        "patient.contact": "Patient.contact",
        "patient.bills": "Patient.bills",
        "patient.visits": "Patient.appointments",
    }
    assert analyse(chart, ANALYST) == Verdict({"patient": "Query.patient"}, False)
    book = parse(
        """mutation Book($input: CreateAppointmentInput!) {
          createAppointment(input: $input) {
            __typename ... on Appointment { bill { paid } } ... on DoctorUnavailable { message }
          }
        }"""
    )
    assert analyse(book, DOCTOR) == Verdict({"createAppointment.bill": "Appointment.bill"}, True)
    assert analyse(book, ADMIN_BEFORE_MFA).refused == {
        "createAppointment": "Mutation.createAppointment"
    }
    assert analyse(parse("query { me { id } }"), ADMIN_BEFORE_MFA).full


# -- over HTTP: every document, by documentId, for every caller it is meant for ------------


@pytest.fixture
def settings(mongo_uri, billing_url, tmp_path):
    # Production's mode: only trusted documents run, by id. Admins may still send
    # free-form queries, which the fixtures use to set up records.
    return settings_for_test(
        mongo_uri,
        tmp_path,
        database_url=billing_url,
        document_mode=PERSISTED_ONLY,
        freeform_roles=frozenset({ADMIN.value}),
    )


@dataclass
class Callers:
    """The shared world (tests.support.World) on the persisted-only app; a token per
    caller, bound to its records; and fresh bookings or accounts for mutations that use
    theirs up."""

    app: Starlette
    services: Services
    admin: GraphQLClient
    world: World
    tokens: dict[Caller, str | None]
    # One booking per day, after the world's own visit: never a clash.
    days: Iterator[int] = field(default_factory=lambda: itertools.count(WORLD_APPOINTMENT_DAYS + 1))

    @property
    def patient(self) -> str:
        return self.world.patient

    @property
    def doctor(self) -> str:
        return self.world.doctor

    @property
    def appointment(self) -> str:
        return self.world.appointment

    def next_slot(self) -> str:
        return iso(future_slot(days=next(self.days)))

    async def book(self) -> str:
        data = await self.admin.data(
            "mutation($i: CreateAppointmentInput!) { createAppointment(input: $i) "
            "{ ... on Appointment { id } } }",
            {"i": {"patientId": self.patient, "doctorId": self.doctor, "start": self.next_slot()}},
        )
        return data["createAppointment"]["id"]

    async def account(self, caller: Caller, *, password: str | None = None):
        """A new account for `caller` (bound to this world's patient or doctor) and an
        access token: for mutations that end the caller's sessions or need a password."""
        if caller is ANONYMOUS:
            return None, None
        role = ADMIN if caller is ADMIN_BEFORE_MFA else caller
        rounds = self.services.settings.bcrypt_rounds
        user = await UserStore(self.services.db, AccessScope.system()).create(
            email=f"{role.value.lower()}-{uuid.uuid4().hex[:8]}@test.invalid",
            password_hash=await hash_password(password, rounds=rounds) if password else "!",
            role=role.value,
            patient_id=ObjectId(self.patient) if role is PATIENT else None,
            doctor_id=ObjectId(self.doctor) if role is DOCTOR else None,
        )
        token = self.services.tokens.issue_access(
            user_id=str(user["_id"]),
            role=role.value,
            version=user["tokenVersion"],
            mfa=caller is not ADMIN_BEFORE_MFA,
            session="test-session",
        ).token
        return user, token

    async def refresh_token(self, user, caller: Caller) -> str:
        """A refresh token recorded the way a sign-in records one (accounts/sessions.py)."""
        family = secrets.token_urlsafe(16)
        issued = self.services.tokens.issue_refresh(
            user_id=str(user["_id"]),
            family=family,
            mfa=caller is not ADMIN_BEFORE_MFA,
            version=user["tokenVersion"],
        )
        await RefreshTokenStore(self.services.db).record(
            jti=issued.jti, user_id=user["_id"], family=family, expires_at=issued.expires_at
        )
        return issued.token

    async def run(self, name: str, token: str | None, variables: dict[str, Any]) -> dict:
        async with http_client(self.app, token) as client:
            response = await client.http.post(
                "/graphql",
                json={"documentId": FILES[name].document_id, "variables": variables},
            )
        assert response.status_code == 200, (name, response.status_code, response.text)
        return response.json()


@pytest.fixture
async def callers(
    app: Starlette, services: Services, client: GraphQLClient, world: World
) -> Callers:
    # The roles' tokens, and the two session states the policy treats apart.
    tokens: dict[Caller, str | None] = {role: token for role, token in world.tokens.items()}
    tokens[ADMIN_BEFORE_MFA] = await issue_token(services, ADMIN, mfa=False)
    tokens[ANONYMOUS] = None
    return Callers(app, services, client, world, tokens)


# What each document is run with, per caller: (access token, variables). Records are the
# caller's own (their chart, their schedule). Mutations run for real, not skipped: each
# run gets a throwaway record (a fresh booking to cancel, reschedule or complete) or a
# throwaway account (for logout, password and MFA changes, which end its sessions), so
# the runs stay independent and prove the mutation works for that role end to end.
Setup = Callable[[Callers, Caller], Awaitable[tuple[str | None, dict[str, Any]]]]
SETUPS: dict[str, Setup] = {}


def setup(*names: str):
    def register(function: Setup) -> Setup:
        for name in names:
            SETUPS[name] = function
        return function

    return register


def _now() -> datetime:
    return datetime.now(UTC)


def _password() -> str:
    return f"violet-{secrets.token_hex(8)}-harbour"


def reads(variables: Callable[[Callers], dict[str, Any]]) -> Setup:
    async def read(callers: Callers, caller: Caller):
        return callers.tokens[caller], variables(callers)

    return read


for _name, _variables in {
    "AppointmentsWithBills": lambda w: {},
    "AveragePrescriptionCostByDisease": lambda w: {},
    "BenchmarkAppointments": lambda w: {"n": 10},
    "DiseaseTreatmentDurations": lambda w: {},
    "DoctorSchedule": lambda w: {
        "id": w.doctor,
        "from": iso(_now() - timedelta(days=1)),
        "before": iso(_now() + timedelta(days=30)),
    },
    "FindDoctors": lambda w: {"specialty": "CARDIOLOGY"},
    "Me": lambda w: {},
    "MonthlyAppointmentTrend": lambda w: {"year": _now().year},
    "MyAccessLog": lambda w: {},
    "MyAppointments": lambda w: {"from": iso(_now())},
    "PatientBills": lambda w: {"patientId": w.patient},
    "PatientChart": lambda w: {"id": w.patient},
    "PrescriptionList": lambda w: {"patientId": w.patient},
    "TopDoctors": lambda w: {},
    "PharmacyQueue": lambda w: {"first": 20},
    "MedicationProfile": lambda w: {"id": w.patient},
    "CheckMedicationSafety": lambda w: {
        "patientId": w.patient,
        "draft": {"drug": "Propranolol", "startDate": "2030-01-01"},
    },
}.items():
    SETUPS[_name] = reads(_variables)


@setup("BookAppointment")
async def _book(callers: Callers, caller: Caller):
    booking = {
        "patientId": callers.patient,
        "doctorId": callers.doctor,
        "start": callers.next_slot(),
    }
    return callers.tokens[caller], {"input": {**booking, "reason": "Follow-up"}}


@setup("CancelAppointment")
async def _cancel(callers: Callers, caller: Caller):
    return callers.tokens[caller], {"id": await callers.book(), "reason": "Feeling better"}


@setup("RescheduleAppointment")
async def _reschedule(callers: Callers, caller: Caller):
    return callers.tokens[caller], {"id": await callers.book(), "start": callers.next_slot()}


@setup("CompleteAppointment")
async def _complete(callers: Callers, caller: Caller):
    # Only a visit that has started can be completed, and bookings are in the future:
    # move the throwaway booking into the past.
    appointment, start = await callers.book(), _now() - timedelta(hours=1)
    await callers.services.db["appointments"].update_one(
        {"_id": ObjectId(appointment)},
        {"$set": {"start": start, "end": start + timedelta(minutes=30)}},
    )
    return callers.tokens[caller], {"id": appointment, "diagnosis": "Asthma"}


@setup("PrescribeMedication")
async def _prescribe(callers: Callers, caller: Caller):
    prescription = {
        "patientId": callers.patient,
        "doctorId": callers.doctor,
        "drug": "Budesonide",
        "dosage": {"value": 200, "unit": "MCG"},
        "frequency": "TWICE_DAILY",
        "startDate": _now().date().isoformat(),
        "cost": "21.50",
        "indication": "Asthma",
    }
    return callers.tokens[caller], {"input": prescription}


async def _pending_prescription(callers: Callers, *, verified: bool = False) -> str:
    """A fresh prescription awaiting review (or already verified), for one run."""
    data = await callers.admin.data(
        "mutation($p: ID!, $d: ID!) { prescribe(input: {patientId: $p, doctorId: $d, "
        'drug: "Montelukast", dosage: {value: 10, unit: MG}, frequency: ONCE_DAILY, '
        'startDate: "2030-01-01", cost: "9.00"}) { ... on Prescription { id } } }',
        {"p": callers.patient, "d": callers.doctor},
    )
    prescription = data["prescribe"]["id"]
    if verified:
        await callers.services.db["prescriptions"].update_one(
            {"_id": ObjectId(prescription)}, {"$set": {"verification.status": "VERIFIED"}}
        )
    return prescription


@setup("VerifyPrescription")
async def _verify(callers: Callers, caller: Caller):
    return callers.tokens[caller], {"id": await _pending_prescription(callers)}


@setup("RejectPrescription")
async def _reject(callers: Callers, caller: Caller):
    reason = "Duplicate of an active prescription"
    return callers.tokens[caller], {"id": await _pending_prescription(callers), "reason": reason}


@setup("DispensePrescription")
async def _dispense(callers: Callers, caller: Caller):
    return callers.tokens[caller], {"id": await _pending_prescription(callers, verified=True)}


@setup("PrescribeWithOverride")
async def _prescribe_with_override(callers: Callers, caller: Caller):
    # Propranolol with the patient's asthma: a critical contraindication, acknowledged.
    draft = {"drug": "Propranolol", "startDate": "2030-01-01"}
    check = await callers.run(
        "CheckMedicationSafety",
        callers.tokens[DOCTOR],
        {"patientId": callers.patient, "draft": draft},
    )
    critical = [
        a["id"]
        for a in check["data"]["medicationSafetyCheck"]["alerts"]
        if a["severity"] == "CRITICAL"
    ]
    assert critical, check
    prescription = {
        "patientId": callers.patient,
        "doctorId": callers.doctor,
        "drug": "Propranolol",
        "dosage": {"value": 40, "unit": "MG"},
        "frequency": "TWICE_DAILY",
        "startDate": "2030-01-01",
        "cost": "6.00",
        "indication": "Migraine prophylaxis",
    }
    acknowledgements = [
        {"alertId": a, "reason": "SPECIALIST_ADVICE", "comment": "Cardiology agreed"}
        for a in critical
    ]
    return callers.tokens[caller], {"input": prescription, "acknowledgements": acknowledgements}


@setup("Login")
async def _login(callers: Callers, caller: Caller):
    password = _password()
    user, _ = await callers.account(PATIENT, password=password)
    return None, {"email": user["email"], "password": password}


@setup("Register")
async def _register(callers: Callers, caller: Caller):
    person = {"givenName": "Reg", "familyName": "Istered", "birthDate": "1990-05-05"}
    email = f"new-{uuid.uuid4().hex[:8]}@example.org"
    return None, {"input": {"email": email, "password": _password(), **person, "sex": "MALE"}}


@setup("VerifyEmail")
async def _verify_email(callers: Callers, caller: Caller):
    token, variables = await _register(callers, caller)
    signed_up = await callers.run("Register", token, variables)
    assert signed_up["data"]["register"]["message"], signed_up
    email = variables["input"]["email"]
    mail = await callers.services.db["outbox"].find_one({"to": email, "template": "verify-email"})
    assert mail is not None, email
    return None, {"email": email, "code": mail["data"]["code"]}


@setup("RefreshToken")
async def _refresh(callers: Callers, caller: Caller):
    user, token = await callers.account(caller)
    return token, {"refreshToken": await callers.refresh_token(user, caller)}


@setup("ChangePassword")
async def _change_password(callers: Callers, caller: Caller):
    password = _password()
    _, token = await callers.account(caller, password=password)
    return token, {"currentPassword": password, "newPassword": _password()}


@setup("EnrollMfa", "Logout")
async def _fresh_account(callers: Callers, caller: Caller):
    _, token = await callers.account(caller)
    return token, {}


@setup("ConfirmMfa")
async def _confirm_mfa(callers: Callers, caller: Caller):
    _, token = await callers.account(caller)
    enrolled = await callers.run("EnrollMfa", token, {})
    secret = enrolled["data"]["enrollMfa"]["secret"]
    return token, {"code": pyotp.TOTP(secret).now()}


def test_every_document_has_a_way_to_run_it():
    assert sorted(SETUPS) == sorted(FILES)


def _error_path(error: dict) -> str:
    return ".".join(str(p) for p in error.get("path") or [] if isinstance(p, str))


@pytest.mark.parametrize("name", sorted(FILES))
async def test_each_document_by_id_for_each_role_it_is_meant_for(callers, name):
    """The static verdict, over HTTP: callers who run it fully get no error at all and
    every root field; partial callers get exactly the predicted refusals."""
    document = FILES[name].document
    failures = []
    for caller in sorted(MEANT_FOR[name], key=_order):
        verdict = analyse(document, caller)
        token, variables = await SETUPS[name](callers, caller)
        body = await callers.run(name, token, variables)
        code = "UNAUTHENTICATED" if caller is ANONYMOUS else "FORBIDDEN"
        got = {_error_path(e): e.get("extensions", {}).get("code") for e in body.get("errors", [])}
        expected = dict.fromkeys(verdict.refused, code)
        if got != expected:
            failures.append(f"{caller.value}: expected errors {expected}, got {body}")
        elif verdict.full and not all(value is not None for value in body["data"].values()):
            failures.append(f"{caller.value}: no data: {body}")
    assert not failures, f"{name}:\n" + "\n".join(failures)
