"""Every query shape the API sends is served from an index (explain, executionStats).

The shapes are not a hand-kept list: the test walks the schema for every list field
(top-level and nested) and every combination of the filters it allows, sends each as
every role over HTTP (first page, next page, totalCount, the relations of each node),
records every command the stores send to MongoDB (find, aggregate, distinct), and
explains one command of each shape on the default demo data (seed 42, 4,000
appointments). A shape fails when

- a page (a find with a limit) examines more than 2 x its limit (page size + 1);
- a count, nested list or other aggregation, a distinct or a lookup by id examines
  more than 2 x the documents its filter matches.

Known gap of the embedded server (../shared/MONGODB_NOTES.md): it materialises every
index candidate before applying a limit, so a page over a filter matching more than the
page reports all of those matches as examined, whatever the index. Such a page passes
when its plan is the one mongod stops early on: an index scan whose key pattern is the
filter's equality fields followed by the list's sort keys, and it still examines no
more than 2 x what its filter matches (no collection scan, no wider index). A page
scoped to a set of ids (a doctor's related patients, `$in`) reads each member to sort
them on mongod too: it passes when index-served and within 2 x its matches. Name search
(an anchored $regex on `searchTerms`) is served from that index by mongod and scanned by
the embedded server; those shapes are listed separately and must stay flat.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
)
from pymongo import AsyncMongoClient, monitoring

from auth.roles import Role
from demo.generator import load_demo_data
from runtime.services import Services
from tests.support import default_schema, issue_token, running_app, settings_for_test

LISTED_COMMANDS = {"find", "aggregate", "distinct"}


class ShapeRecorder(monitoring.CommandListener):
    """Keeps every read command the app sends while `recording` is on."""

    def __init__(self) -> None:
        self.recording = False
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.recording and event.command_name in LISTED_COMMANDS:
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# --- what the API sends ------------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    doctor_id: str
    patient_id: str
    specialty: str


def _unwrap(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _is_connection(field: GraphQLField) -> bool:
    named = get_named_type(field.type)
    return isinstance(named, GraphQLObjectType) and named.name.endswith("Connection")


def _literal(name: str, type_: Any, samples: Samples) -> str:
    named = _unwrap(type_)
    by_name = {
        "doctorId": f'"{samples.doctor_id}"',
        "patientId": f'"{samples.patient_id}"',
        "actorId": f'"{samples.doctor_id}"',
        "from": '"2026-02-01T00:00:00+00:00"',
        "before": '"2026-04-01T00:00:00+00:00"',
        "specialty": samples.specialty,
        "name": '"a"',
        "startsFrom": '"2025-06-01T00:00:00+00:00"',
        "startsBefore": '"2027-06-01T00:00:00+00:00"',
        "availableOn": f'"{date(2026, 3, 2).isoformat()}"',
    }
    if name in by_name:
        return by_name[name]
    if isinstance(named, GraphQLEnumType):
        return sorted(named.values)[0]
    if isinstance(named, GraphQLScalarType) and named.name == "Boolean":
        return "true"
    raise AssertionError(f"no sample value for argument {name}: {named}")


def _filter_combinations(field: GraphQLField, samples: Samples) -> Iterator[str]:
    """Each combination of the field's filter arguments, as GraphQL argument text."""
    names = [name for name in field.args if name not in ("first", "after")]
    for size in range(len(names) + 1):
        for combination in itertools.combinations(names, size):
            yield ", ".join(
                f"{name}: {_literal(name, field.args[name].type, samples)}" for name in combination
            )


def _node_selection(node_type: GraphQLObjectType) -> str:
    """The node's id and the id of every single-object relation (by-id batches)."""
    relations = [
        name
        for name, field in node_type.fields.items()
        if isinstance(_unwrap(field.type), GraphQLObjectType)
        and not isinstance(field.type, GraphQLList)
        and not isinstance(getattr(field.type, "of_type", None), GraphQLList)
        and not _is_connection(field)
        and "id" in _unwrap(field.type).fields
    ]
    return "id " + " ".join(f"{name} {{ id }}" for name in relations)


def _connection_node(field: GraphQLField) -> GraphQLObjectType:
    connection = get_named_type(field.type)
    assert isinstance(connection, GraphQLObjectType)
    node = get_named_type(connection.fields["nodes"].type)
    assert isinstance(node, GraphQLObjectType)
    return node


def operations(samples: Samples) -> Iterator[str]:
    """First pages of every list and filter combination; nested lists under the first
    parents of each top-level list."""
    query = default_schema()._schema.query_type
    assert query is not None
    for name, list_field in query.fields.items():
        if not _is_connection(list_field):
            continue
        node = _connection_node(list_field)
        for arguments in _filter_combinations(list_field, samples):
            separator = ", " if arguments else ""
            yield (
                f"{{ {name}(first: 5{separator}{arguments}) {{ totalCount "
                f"pageInfo {{ endCursor }} nodes {{ {_node_selection(node)} }} }} }}"
            )
        for child_name, child in node.fields.items():
            if not _is_connection(child):
                continue
            child_node = _connection_node(child)
            for arguments in _filter_combinations(child, samples):
                separator = ", " if arguments else ""
                nodes = _node_selection(child_node)
                yield (
                    f"{{ {name}(first: 20) {{ nodes {{ {child_name}(first: 2{separator}"
                    f"{arguments}) {{ totalCount nodes {{ {nodes} }} }} }} }} }}"
                )


# --- the shapes --------------------------------------------------------------------------


def _shape(value: Any) -> Any:
    """A value with its data replaced by type names: queries alike up to their values."""
    if isinstance(value, dict):
        return tuple((key, _shape(item)) for key, item in value.items())
    if isinstance(value, list):
        return ("list", tuple(sorted({repr(_shape(item)) for item in value})))
    return type(value).__name__


def signature(command: dict[str, Any]) -> Any:
    kind = next(iter(command))
    parts = {key: command.get(key) for key in ("filter", "sort", "pipeline", "query", "key")}
    return (kind, command[kind], _shape(parts), "limit" in command)


@dataclass
class Verdict:
    command: dict[str, Any]
    examined: int
    matched: int
    plan: str
    allowed: int
    problems: list[str] = field(default_factory=list)


def _plan_stages(plan: dict[str, Any]) -> list[dict[str, Any]]:
    stages = [plan]
    if "inputStage" in plan:
        stages += _plan_stages(plan["inputStage"])
    for stage in plan.get("inputStages", []):
        stages += _plan_stages(stage)
    return stages


def _index_key_pattern(plan: dict[str, Any]) -> list[str] | None:
    for stage in _plan_stages(plan):
        if stage.get("stage") == "IXSCAN":
            return list(stage["keyPattern"])
    return None


def served_like_mongod(filter: dict[str, Any], sort: dict[str, Any], plan: dict[str, Any]) -> bool:
    """The plan walks an index of the filter's fields then the sort keys: mongod returns
    such a page in order and stops after `limit` documents."""
    keys = _index_key_pattern(plan)
    sort_keys = list(sort)
    if keys is None or any(key.startswith("$") for key in filter):
        return False
    leading = set(filter) - {sort_keys[0]} if sort_keys else set(filter)
    return set(keys[: len(leading)]) == leading and keys[len(leading) :] == sort_keys


async def judge(db: Any, command: dict[str, Any]) -> Verdict:
    kind = next(iter(command))
    collection = db[command[kind]]
    explain_of = {
        key: value
        for key, value in command.items()
        if key not in ("lsid", "$db", "$clusterTime", "txnNumber", "readConcern", "batchSize")
    }
    if kind == "aggregate":
        explain_of["cursor"] = {}
    explained = await db.command({"explain": explain_of, "verbosity": "executionStats"})
    if "stages" in explained:
        cursor_stage = explained["stages"][0]["$cursor"]
        stats, plan = cursor_stage["executionStats"], cursor_stage["queryPlanner"]["winningPlan"]
    else:
        stats, plan = explained["executionStats"], explained["queryPlanner"]["winningPlan"]
    examined = stats["totalDocsExamined"]
    filter = _served_filter(command)
    matched = await collection.count_documents(filter)
    verdict = Verdict(command, examined, matched, _plan_text(plan), 2 * max(matched, 1))
    if kind == "find" and command.get("limit"):
        limit = int(command["limit"])
        verdict.allowed = 2 * limit
        if examined > verdict.allowed:
            sort = dict(command.get("sort", {}))
            index_served = served_like_mongod(filter, sort, plan) or (
                _has_id_set(filter) and _index_key_pattern(plan) is not None
            )
            if not (index_served and examined <= 2 * max(matched, 1)):
                verdict.problems.append(
                    f"page of {limit} examined {examined} documents ({matched} match)"
                )
    elif examined > verdict.allowed:
        verdict.problems.append(f"examined {examined} documents for {matched} matches")
    return verdict


def _has_id_set(filter: dict[str, Any]) -> bool:
    """A set-membership row scope (a doctor's related patients): mongod too reads each
    member to sort them; the set is the caller's own care relationships, so it is
    bounded by them, not by the collection."""
    return any(isinstance(c, dict) and "$in" in c for c in filter.values())


def _plan_text(plan: dict[str, Any]) -> str:
    return " <- ".join(
        stage["stage"] + (f"({stage['indexName']})" if "indexName" in stage else "")
        for stage in _plan_stages(plan)
    )


def _served_filter(command: dict[str, Any]) -> dict[str, Any]:
    """The filter a planner picks the index for: a find's, or a pipeline's first $match."""
    kind = next(iter(command))
    if kind == "find":
        return dict(command.get("filter") or {})
    if kind == "distinct":
        return dict(command.get("query") or {})
    first = command["pipeline"][0] if command["pipeline"] else {}
    return dict(first.get("$match", {}))


def _uses_regex(command: dict[str, Any]) -> bool:
    return "$regex" in repr(_served_filter(command))


# --- the test ----------------------------------------------------------------------------


@dataclass
class Recorded:
    services: Services
    db: Any
    recorder: ShapeRecorder
    shapes: dict[Any, dict[str, Any]]
    failures: Counter[str]


async def _send_all(app: Any, services: Services, recorder: ShapeRecorder) -> Counter[str]:
    db = services.db
    busiest = await db["appointments"].aggregate(
        [{"$group": {"_id": "$doctorId", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}, {"$limit": 1}]
    )
    doctor_id = (await busiest.to_list())[0]["_id"]
    appointment = await db["appointments"].find_one({"doctorId": doctor_id})
    doctor = await db["doctors"].find_one({"_id": doctor_id})
    assert appointment is not None and doctor is not None
    samples = Samples(str(doctor_id), str(appointment["patientId"]), doctor["specialty"])
    tokens = {
        "ADMIN": await issue_token(services, Role.ADMIN),
        "DOCTOR": await issue_token(services, Role.DOCTOR, doctor_id=doctor_id),
        "PATIENT": await issue_token(services, Role.PATIENT, patient_id=appointment["patientId"]),
        "PHARMACIST": await issue_token(services, Role.PHARMACIST),
        "ANALYST": await issue_token(services, Role.ANALYST),
    }
    codes: Counter[str] = Counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shapes") as http:
        for operation in operations(samples):
            for token in tokens.values():
                headers = {"authorization": f"Bearer {token}"}
                recorder.recording = True
                body = (
                    await http.post("/graphql", json={"query": operation}, headers=headers)
                ).json()
                cursor = _end_cursor(body)
                if cursor:  # the next page: the cursor's shape
                    paged = operation.replace("(first: 5", f'(first: 5, after: "{cursor}"', 1)
                    await http.post("/graphql", json={"query": paged}, headers=headers)
                recorder.recording = False
                for error in body.get("errors") or []:
                    codes[error.get("extensions", {}).get("code", "?")] += 1
    return codes


def _end_cursor(body: dict[str, Any]) -> str | None:
    data = body.get("data") or {}
    for value in data.values():
        if isinstance(value, dict) and isinstance(value.get("pageInfo"), dict):
            return value["pageInfo"].get("endCursor")
    return None


@pytest.fixture(scope="module")
async def recorded(
    mongo_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Recorded]:
    recorder = ShapeRecorder()
    data_dir: Path = tmp_path_factory.mktemp("shapes")
    # The nested operations ask 20 parents for their pages: more than the default
    # budget for a caller, which has tests of its own.
    settings = settings_for_test(mongo_uri, data_dir).with_overrides(max_cost=10**6)
    # Not dropped: the embedded server takes about 30 s to drop a database of this size
    # with its indexes, and the session's server is temporary.
    async with running_app(
        settings, mongo_event_listeners=[recorder], drop_database=False
    ) as application:
        services = application.state.services
        await load_demo_data(
            services, seed=42, size="default", anchor=date(2026, 3, 2), progress=False
        )
        failures = await _send_all(application, services, recorder)
        shapes: dict[Any, dict[str, Any]] = {}
        for command in recorder.commands:
            shapes.setdefault(signature(command), command)
        # Explained through a client of its own: nothing it sends is recorded.
        explainer: AsyncMongoClient = AsyncMongoClient(mongo_uri, tz_aware=True)
        try:
            yield Recorded(
                services, explainer[settings.mongodb_database], recorder, shapes, failures
            )
        finally:
            await explainer.close()


async def test_the_api_answered_every_operation_without_an_internal_error(recorded: Recorded):
    assert recorded.failures["INTERNAL_SERVER_ERROR"] == 0, recorded.failures
    # The walk reached every store: lists, nested lists, counts and by-id batches.
    collections = {(next(iter(c)), c[next(iter(c))]) for c in recorded.shapes.values()}
    for expected in [
        ("find", "appointments"),
        ("aggregate", "appointments"),
        ("find", "patients"),
        ("aggregate", "prescriptions"),
        ("find", "doctors"),
        ("distinct", "appointments"),
    ]:
        assert expected in collections, sorted(collections)


async def test_every_shape_is_served_from_an_index(recorded: Recorded):
    failing, regex_shapes = [], []
    for command in recorded.shapes.values():
        if _uses_regex(command):
            regex_shapes.append(command)
            continue
        verdict = await judge(recorded.db, command)
        if verdict.problems:
            failing.append(f"{verdict.problems[0]}: {verdict.plan}: {_brief(command)}")
    assert not failing, "\n".join(failing)
    # The explained set is large enough to mean something: each combination of the
    # lists' filters, scoped per role, gives a shape of its own.
    assert len(recorded.shapes) - len(regex_shapes) > 60


async def test_name_search_shapes_stay_flat(recorded: Recorded):
    """The embedded server scans for an anchored $regex (mongod serves it from the
    searchTerms index); the filter must still be flat, with nothing wrapped in $and."""
    regex_shapes = [c for c in recorded.shapes.values() if _uses_regex(c)]
    assert regex_shapes
    for command in regex_shapes:
        filter = _served_filter(command)
        assert "$and" not in filter, _brief(command)
        assert "$regex" in repr(filter.get("searchTerms")), _brief(command)


def _brief(command: dict[str, Any]) -> str:
    kind = next(iter(command))
    keep = {k: command[k] for k in ("filter", "sort", "limit", "pipeline", "query") if k in command}
    return f"{kind} {command[kind]} {keep}"[:600]


def test_shape_signatures_ignore_values_but_not_structure():
    a = {"find": "x", "filter": {"doctorId": 1, "start": {"$gte": datetime.now(UTC)}}}
    b = {"find": "x", "filter": {"doctorId": 2, "start": {"$gte": datetime(2020, 1, 1)}}}
    c = {"find": "x", "filter": {"$and": [{"doctorId": 2}, {"start": {"$gte": 1}}]}}
    assert signature(a) == signature(b) != signature(c)
