"""Row scopes as pure functions: the MongoDB filter and SQL condition each role gets
(datasources/scope.py), and how a scope merges with a caller's own filter into one
flat filter a query planner can serve (datasources/filters.py). No database: the one
part of a scope that reads (a doctor's care relationships) is given here.

The expected filters are written out by hand, role by role, rather than derived from
auth/policy.py's ROW_SCOPES, so a change to the table shows up here as a change.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa
from bson import ObjectId

from auth.policy import ROW_SCOPES
from auth.roles import Principal, Role
from datasources.filters import (
    NOTHING,
    Document,
    is_empty_match,
    matcher,
    merge,
    split_for_planner,
)
from datasources.scope import AccessScope

PATIENT_ID = ObjectId("64b000000000000000000001")
DOCTOR_ID = ObjectId("64b000000000000000000002")
TREATED = [ObjectId("64b000000000000000000011"), ObjectId("64b000000000000000000012")]
GRANTED = ObjectId("64b000000000000000000013")  # a break-glass grant, not a treated patient
COLLECTIONS = ["patients", "doctors", "appointments", "prescriptions", "bills"]


class KnownRelations(AccessScope):
    """A scope whose doctor's care relationships and break-glass grants are given, not
    read from MongoDB; counts how often the relationships are loaded."""

    def __init__(
        self,
        principal: Principal | None,
        *,
        treated: list[ObjectId] | None = None,
        granted: dict[ObjectId, ObjectId] | None = None,
    ) -> None:
        super().__init__(principal)
        self.treated = treated or []
        self.granted = granted or {}
        self.loads = 0

    async def _load_related(self) -> list[ObjectId]:
        self.loads += 1
        return self.treated

    async def _load_grants(self) -> dict[ObjectId, ObjectId]:
        return self.granted


def principal(role: Role, *, linked: bool = True, mfa: bool = True) -> Principal:
    """A caller of `role`; a patient's or doctor's account is linked to its record
    unless `linked` is False."""
    return Principal(
        user_id=ObjectId(),
        role=role,
        patient_id=PATIENT_ID if linked and role is Role.PATIENT else None,
        doctor_id=DOCTOR_ID if linked and role is Role.DOCTOR else None,
        mfa_verified=mfa,
    )


# --- Each role's MongoDB filter -------------------------------------------------------------

EVERYTHING: Document = {}
CARE = {"$in": TREATED}
EXPECTED_FILTERS: dict[Role, dict[str, Document]] = {
    Role.ADMIN: dict.fromkeys(COLLECTIONS, EVERYTHING),
    Role.PHARMACIST: {
        "patients": EVERYTHING,
        "doctors": EVERYTHING,
        "appointments": NOTHING,
        "prescriptions": EVERYTHING,
        "bills": NOTHING,
    },
    Role.DOCTOR: {
        "patients": {"_id": CARE},
        "doctors": EVERYTHING,
        "appointments": {"doctorId": DOCTOR_ID},
        "prescriptions": {"patientId": CARE},
        "bills": NOTHING,
    },
    Role.PATIENT: {
        "patients": {"_id": PATIENT_ID},
        "doctors": EVERYTHING,
        "appointments": {"patientId": PATIENT_ID},
        "prescriptions": {"patientId": PATIENT_ID},
        "bills": {"patientId": PATIENT_ID},
    },
    Role.ANALYST: dict.fromkeys(COLLECTIONS, NOTHING),
}


def test_the_expectations_cover_every_collection_the_policy_scopes():
    assert sorted(ROW_SCOPES) == sorted(COLLECTIONS)
    assert set(EXPECTED_FILTERS) == set(Role)


@pytest.mark.parametrize("collection", COLLECTIONS)
@pytest.mark.parametrize("role", list(Role), ids=lambda role: role.value)
async def test_each_role_gets_its_filter(role, collection):
    scope = KnownRelations(principal(role), treated=TREATED)
    assert await scope.mongo_filter(collection) == EXPECTED_FILTERS[role][collection]


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_the_service_itself_sees_everything(collection):
    assert await AccessScope.system().mongo_filter(collection) == {}


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_no_caller_sees_nothing(collection):
    assert await AccessScope(None).mongo_filter(collection) == NOTHING


@pytest.mark.parametrize("collection", COLLECTIONS)
async def test_an_admin_before_the_second_factor_sees_nothing(collection):
    scope = AccessScope(principal(Role.ADMIN, mfa=False))
    assert await scope.mongo_filter(collection) == NOTHING


@pytest.mark.parametrize("collection", ["patients", "appointments", "prescriptions"])
@pytest.mark.parametrize("role", [Role.PATIENT, Role.DOCTOR], ids=lambda role: role.value)
async def test_an_account_linked_to_no_record_sees_none_of_its_own(role, collection):
    scope = KnownRelations(principal(role, linked=False))
    assert is_empty_match(await scope.mongo_filter(collection))


async def test_a_doctors_break_glass_grants_join_their_care_relationships():
    scope = KnownRelations(principal(Role.DOCTOR), treated=TREATED, granted={GRANTED: ObjectId()})
    assert await scope.mongo_filter("patients") == {"_id": {"$in": sorted([*TREATED, GRANTED])}}


async def test_care_relationships_are_loaded_once_per_request():
    scope = KnownRelations(principal(Role.DOCTOR), treated=TREATED)
    for collection in ("patients", "prescriptions", "patients"):
        await scope.mongo_filter(collection)
    assert scope.loads == 1


# --- The bills SQL condition ----------------------------------------------------------------


def sql(condition: sa.ColumnElement[bool]) -> str:
    return str(condition.compile(compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(AccessScope.system(), "true", id="system"),
        pytest.param(AccessScope(principal(Role.ADMIN)), "true", id="ADMIN"),
        pytest.param(
            AccessScope(principal(Role.PATIENT)), f"bills.patient_id = '{PATIENT_ID}'", id="PATIENT"
        ),
        pytest.param(AccessScope(principal(Role.PATIENT, linked=False)), "false", id="unlinked"),
        pytest.param(AccessScope(principal(Role.DOCTOR)), "false", id="DOCTOR"),
        pytest.param(AccessScope(principal(Role.PHARMACIST)), "false", id="PHARMACIST"),
        pytest.param(AccessScope(principal(Role.ANALYST)), "false", id="ANALYST"),
        pytest.param(AccessScope(principal(Role.ADMIN, mfa=False)), "false", id="before-mfa"),
        pytest.param(AccessScope(None), "false", id="nobody"),
    ],
)
def test_each_caller_gets_its_bills_condition(scope, expected):
    assert sql(scope.sql_condition()) == expected


# --- Merging a scope with the caller's filter -----------------------------------------------

A, B, C = (ObjectId(f"64b0000000000000000000a{n}") for n in range(3))
START_1, START_2, START_3 = 10, 20, 30


@pytest.mark.parametrize(
    ("filter", "scope", "merged"),
    [
        pytest.param({"status": "SCHEDULED"}, {}, {"status": "SCHEDULED"}, id="no-scope"),
        pytest.param(
            {"status": "SCHEDULED"},
            {"patientId": A},
            {"status": "SCHEDULED", "patientId": A},
            id="different-fields-side-by-side",
        ),
        pytest.param({"patientId": A}, {"patientId": A}, {"patientId": A}, id="same-equality"),
        pytest.param(
            {"patientId": A}, {"patientId": B}, {"patientId": {"$in": []}}, id="other-equality"
        ),
        pytest.param(
            {"patientId": {"$in": [A, B]}},
            {"patientId": {"$in": [B, C]}},
            {"patientId": B},
            id="sets-meet-in-one",
        ),
        pytest.param(
            {"patientId": {"$in": [A, B, C]}},
            {"patientId": {"$in": [C, A]}},
            {"patientId": {"$in": [A, C]}},
            id="sets-meet-in-two-in-the-filters-order",
        ),
        pytest.param(
            {"patientId": {"$eq": A}}, {"patientId": {"$in": [A, B]}}, {"patientId": A}, id="$eq"
        ),
        pytest.param(
            {"start": {"$gte": START_1, "$lt": START_3}},
            {"start": {"$gt": START_2}},
            {"start": {"$gt": START_2, "$lt": START_3}},
            id="ranges-tighten",
        ),
        pytest.param(
            {"start": {"$gte": START_2}},
            {"start": {"$gt": START_2}},
            {"start": {"$gt": START_2}},
            id="equal-bounds-keep-the-exclusive",
        ),
        pytest.param(
            {"name": {"$regex": "^jo"}},
            {"name": "Jo"},
            {"name": {"$regex": "^jo"}, "$and": [{"name": "Jo"}]},
            id="not-combinable-goes-to-$and",
        ),
        pytest.param(
            {"$and": [{"a": 1}], "status": "X"},
            {"$and": [{"b": 2}]},
            {"status": "X", "a": 1, "b": 2},
            id="$and-clauses-on-new-fields-are-lifted",
        ),
        pytest.param(
            {"tags": {"$in": [["x"]]}},
            {"tags": {"$in": [["x"]]}},
            {"tags": {"$in": [["x"]]}, "$and": [{"tags": {"$in": [["x"]]}}]},
            id="unhashable-values-go-to-$and",
        ),
        pytest.param(
            {"start": {"$gte": 1}},
            {"start": {"$gt": "a"}},
            {"start": {"$gte": 1}, "$and": [{"start": {"$gt": "a"}}]},
            id="bounds-of-other-types-go-to-$and",
        ),
    ],
)
def test_a_scope_merges_into_one_flat_filter(filter, scope, merged):
    assert merge(filter, scope) == merged


def test_merging_leaves_its_inputs_alone():
    filter, scope = {"patientId": {"$in": [A, B]}}, {"patientId": {"$in": [B]}}
    merge(filter, scope)
    assert filter == {"patientId": {"$in": [A, B]}} and scope == {"patientId": {"$in": [B]}}


def evaluate(filter: Document, document: Document) -> bool:
    """Whether `document` matches `filter`, for the operators these tests use: the oracle
    the merged filter is checked against."""
    for field, condition in filter.items():
        if field == "$and":
            if not all(evaluate(clause, document) for clause in condition):
                return False
            continue
        operators = condition if isinstance(condition, dict) else {"$eq": condition}
        value = document.get(field)
        if not all(holds(op, value, bound) for op, bound in operators.items()):
            return False
    return True


def holds(op: str, value: Any, bound: Any) -> bool:
    if op == "$eq":
        return value == bound
    if op == "$in":
        return value in bound
    if value is None:  # a missing field is in no range
        return False
    return {
        "$gt": value > bound,
        "$gte": value >= bound,
        "$lt": value < bound,
        "$lte": value <= bound,
    }[op]


CONDITIONS: list[Any] = [
    1,
    {"$eq": 2},
    {"$in": [1, 2]},
    {"$in": [2, 3]},
    {"$in": []},
    {"$gt": 1},
    {"$gte": 2},
    {"$lt": 3},
    {"$lte": 2, "$gt": 0},
]


def test_merging_never_changes_which_documents_match():
    """Every pair of conditions, on the same field and on two: the merged filter matches
    exactly the documents both filters match."""
    documents = [{"x": x, "y": y} for x in range(5) for y in range(5)] + [{}]
    for a, b in itertools.product(CONDITIONS, repeat=2):
        for first, second in (({"x": a}, {"x": b}), ({"x": a}, {"y": b})):
            merged = merge(first, second)
            for document in documents:
                expected = evaluate(first, document) and evaluate(second, document)
                assert evaluate(merged, document) == expected, (first, second, merged, document)


# --- Shapes for the planner -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "empty"),
    [
        (NOTHING, True),
        ({"status": "X", "patientId": {"$in": []}}, True),
        ({}, False),
        ({"patientId": {"$in": [A]}}, False),
        ({"status": "X"}, False),
    ],
)
def test_an_empty_id_set_anywhere_matches_nothing(filter, empty):
    assert is_empty_match(filter) is empty


def test_the_planner_is_served_equalities_and_the_one_kept_condition():
    filter = {
        "doctorId": A,
        "patientId": {"$in": [B, C]},
        "start": {"$gte": START_1},
        "$and": [{"x": 1}],
    }
    served, rest = split_for_planner(filter, keep="patientId")
    assert served == {"doctorId": A, "patientId": {"$in": [B, C]}}
    assert rest == {"start": {"$gte": START_1}, "$and": [{"x": 1}]}


def test_a_scope_of_equalities_and_sets_is_checked_in_python():
    in_scope = matcher({"patientId": {"$in": [A, B]}, "status": "SCHEDULED"})
    assert in_scope is not None
    assert in_scope({"patientId": A, "status": "SCHEDULED"})
    assert not in_scope({"patientId": C, "status": "SCHEDULED"})
    assert not in_scope({"patientId": A, "status": "CANCELLED"})
    assert not in_scope({"status": "SCHEDULED"})


@pytest.mark.parametrize(
    "filter",
    [{"start": {"$gt": 1}}, {"$and": [{"a": 1}]}, {"tags": {"$in": [["x"]]}}],
    ids=["range", "$and", "unhashable"],
)
def test_any_other_scope_shape_is_left_to_the_server(filter):
    assert matcher(filter) is None
