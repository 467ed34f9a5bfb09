"""Fuzzing: operations generated from the committed schema.graphql (hypothesis-graphql),
sent over HTTP as every role and as an anonymous caller, against the small demo data.

Whatever a client sends, the server answers with a typed error or data: no 5xx, a JSON
body, `extensions.code` on every error, never INTERNAL_SERVER_ERROR (a masked internal
error is still a bug) and no message that leaks a traceback, an exception class or
driver text.

How generation and sending fit together. The suite's tests are async (one session event
loop) and Hypothesis's `@given` runs a synchronous function, so the two are kept apart
on purpose:

1. Generation: `_generate` runs a `@given` over a synchronous function that only
   appends each drawn operation to a list. The Hypothesis settings make it
   deterministic (derandomize, no example database) and generation-only; strategies
   are per root field (one_of over them) because the whole-schema strategy draws
   operations five times as large at five times the cost, and a set of mixed
   operations from `from_schema` plus a set of invalid ones (Mode.NEGATIVE) covers
   the rest.
2. Sending: the async test sends every operation, in order, each as one caller in
   turn (every other round with its arguments as variables), and records every
   problem instead of stopping at the first.
3. Minimising, only when something failed: `hypothesis.find` runs in a worker thread
   (so the event loop stays free) with a condition that sends each candidate through
   the loop (`run_coroutine_threadsafe`) and holds when the same problem comes back;
   Hypothesis then shrinks it. The report lists every problem with its operations and
   the minimal example.

Run with `-s` to see the summary: operations per caller, executed against refused
before execution, error codes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import graphql
import httpx
import hypothesis_graphql as hg
import pytest
import sqlalchemy as sa
from bson import ObjectId
from hypothesis import HealthCheck, Phase, find, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from hypothesis_graphql import nodes

from auth.roles import Role
from datasources.appointments import COMPLETED
from tests.conftest import DEMO_ANCHOR
from tests.support import issue_token

SCHEMA = graphql.build_schema((Path(__file__).parents[1] / "schema.graphql").read_text())

# Hypothesis examples per set; duplicates are dropped, and the test checks that at
# least MINIMUM_OPERATIONS distinct operations are left. To search further than CI does,
# CAREGRAPH_FUZZ_SEED=<n> draws other operations and CAREGRAPH_FUZZ_SCALE=<k> k times
# as many.
SEED = os.environ.get("CAREGRAPH_FUZZ_SEED")
SCALE = float(os.environ.get("CAREGRAPH_FUZZ_SCALE", "1"))
QUERY_EXAMPLES = int(1100 * SCALE)
MUTATION_EXAMPLES = int(850 * SCALE)
MIXED_EXAMPLES = int(150 * SCALE)
NEGATIVE_EXAMPLES = int(200 * SCALE)
MINIMUM_OPERATIONS = 2000
# CAREGRAPH_FUZZ_LOG=<file>: every operation, caller and response, one JSON per line.
LOG_PATH = os.environ.get("CAREGRAPH_FUZZ_LOG")
MINIMISED_PROBLEMS = 8  # at most this many distinct problems are shrunk (each costs time)

GENERATION = settings(
    max_examples=1,  # overridden per set
    # The same operations on every run, so CI stays deterministic (unless a seed is set).
    derandomize=SEED is None,
    database=None,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)

# Text a client must never see: tracebacks, Python exception names, driver messages.
LEAKS = re.compile(
    r"Traceback|File \"|\b[A-Z]\w*(?:Error|Exception)\b|NoneType|object has no attribute"
    r"|positional argument|keyword argument|pymongo|bson|sqlalchemy|sqlite|asyncpg"
    r"|E11000|errmsg|ObjectId\(|12-byte input|strawberry\.",
)


# --- Real records, so that generated ids hit them -----------------------------------------

# Hypothesis draws a real id as "@real:<n>"; printing the operation turns it into the
# n-th real record of the kind the argument names (patientId: a patient; the `id` of
# updateDoctor: a doctor), so ids hit records of the right kind and still shrink.
REAL = "@real:"
ENTITY_OF_ARGUMENT = {
    "patientId": "patients",
    "doctorId": "doctors",
    "appointmentId": "appointments",
}
ENTITY_WORDS = ("patient", "doctor", "appointment", "prescription", "bill")


@dataclass(frozen=True)
class Pool:
    ids: dict[str, list[str]]  # kind ("patients", ..., "bills", "users") -> real ids
    patient: ObjectId  # has appointments, prescriptions and bills: the PATIENT caller
    doctor: ObjectId  # has appointments: the DOCTOR caller


async def real_records(services) -> Pool:
    db = services.db
    visit = await db["appointments"].find_one({"status": COMPLETED}, sort=[("_id", 1)])
    ids: dict[str, list[str]] = {}
    for collection, limit in (
        ("patients", 12),
        ("doctors", 6),
        ("appointments", 20),
        ("prescriptions", 12),
        ("users", 20),
    ):
        cursor = db[collection].find({}, projection={"_id": 1}, sort=[("_id", 1)], limit=limit)
        ids[collection] = [str(document["_id"]) async for document in cursor]
    ids["patients"].insert(0, str(visit["patientId"]))
    ids["doctors"].insert(0, str(visit["doctorId"]))
    ids["appointments"].insert(0, str(visit["_id"]))
    async with services.engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT id FROM bills ORDER BY id LIMIT 15"))
        ids["bills"] = [str(row[0]) for row in rows]
    return Pool(ids, visit["patientId"], visit["doctorId"])


def kind_of_id(field_name: str, argument: str) -> str:
    if argument in ENTITY_OF_ARGUMENT:
        return ENTITY_OF_ARGUMENT[argument]
    lowered = field_name.lower()
    return next((f"{word}s" for word in ENTITY_WORDS if word in lowered), "users")


class RealIds(graphql.Visitor):
    def __init__(self, pool: Pool) -> None:
        super().__init__()
        self.pool = pool

    def enter_string_value(self, node, _key, parent, _path, ancestors):
        if not node.value.startswith(REAL):
            return None
        chain = [parent, *reversed(ancestors)]
        named = (graphql.ArgumentNode, graphql.ObjectFieldNode)
        argument = next((n.name.value for n in chain if isinstance(n, named)), "")
        field_name = next((n.name.value for n in chain if isinstance(n, graphql.FieldNode)), "")
        choices = self.pool.ids[kind_of_id(field_name, argument)]
        return graphql.StringValueNode(value=choices[int(node.value[len(REAL) :]) % len(choices)])


def printer(pool: Pool) -> Callable[[graphql.DocumentNode], str]:
    return lambda document: graphql.print_ast(graphql.visit(document, RealIds(pool)))


# --- Scalars: mostly plausible values, some just outside the rules, some garbage ----------


def _strings(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


GARBAGE = st.text(max_size=24)
TIMEZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-14))]
)
PLAUSIBLE_TEXT = _strings(
    "Ada", "smith", "Lovelace Ada", "Asthma", "Type 2 diabetes", "Check-up",
    "lantern-orchard-velvet", "ada@example.org", "123456", "", " ", "x" * 300,
)  # fmt: skip


def scalar_strategies() -> dict[str, st.SearchStrategy]:
    """Strategies of GraphQL value nodes per scalar. one_of picks a branch about evenly,
    so a branch listed twice is drawn about twice as often."""
    anchor = datetime(DEMO_ANCHOR.year, DEMO_ANCHOR.month, DEMO_ANCHOR.day, tzinfo=UTC)
    real = st.integers(min_value=0, max_value=1000).map(lambda n: f"{REAL}{n}")
    ids = st.one_of(
        real,
        real,
        real,
        st.binary(min_size=12, max_size=12).map(bytes.hex),  # well-formed, unknown
        st.integers(min_value=-(2**40), max_value=2**40).map(str),
        GARBAGE,
    ).map(nodes.String)
    texts = st.one_of(
        PLAUSIBLE_TEXT,
        st.integers(min_value=0, max_value=10**6).map(lambda n: f"user{n}@example.org"),
        st.text(max_size=40),
    ).map(nodes.String)
    # Bookable times: 5-minute steps in office hours, around the demo data's week or in
    # a future one (fixed, so the operations stay the same on every run).
    slots = st.builds(
        lambda base, days, step: base + timedelta(days=days, minutes=5 * step),
        st.sampled_from([datetime(2030, 1, 7, tzinfo=UTC), anchor]),
        st.integers(min_value=-60, max_value=120),
        st.integers(min_value=7 * 12, max_value=17 * 12),
    ).map(lambda d: d.isoformat().replace("+00:00", "Z"))
    date_times = st.one_of(
        slots,
        slots,
        slots,
        st.datetimes(min_value=datetime(1900, 1, 1), timezones=TIMEZONES).map(datetime.isoformat),
        _strings(
            "2030-01-07T09:00:00",  # no offset: refused
            "0001-01-01T00:00:00+01:00",  # before year 1 once in UTC
            "9999-12-31T23:59:59-01:00",  # after year 9999 once in UTC
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-02-30T09:00:00Z",
            "2026-03-02",
        ),
        GARBAGE,
    ).map(nodes.String)
    dates = st.one_of(
        st.dates(min_value=date(1900, 1, 1), max_value=date(2035, 12, 31)).map(date.isoformat),
        st.dates(min_value=date(1900, 1, 1), max_value=date(2035, 12, 31)).map(date.isoformat),
        st.dates().map(date.isoformat),
        _strings("0001-01-01", "9999-12-31", "2026-02-29", "2026-13-01", "20260302"),
        GARBAGE,
    ).map(nodes.String)
    times = st.one_of(
        st.times().map(lambda t: t.isoformat()),
        _strings("09:00", "17:00", "00:00", "23:59", "24:00", "9:00", "09:00+01:00"),
        GARBAGE,
    ).map(nodes.String)
    plausible_amounts = st.decimals(min_value=-1000, max_value=100_000, places=2).map(str)
    decimals = st.one_of(
        plausible_amounts,
        plausible_amounts,
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        _strings("0", "0.00", "-0.01", "0.001", "1e3", "1E+999999", "NaN", "-Infinity", "1_0"),
        GARBAGE,
    ).map(nodes.String)
    small = st.integers(min_value=-2, max_value=30)  # page sizes, limits, durations
    ints = st.one_of(
        small,
        small,
        small,
        _strings("2025", "2026", "2027", "500", "501", "5", "15", "240").map(int),
        st.integers(min_value=-(2**31), max_value=2**31 - 1),
    ).map(nodes.Int)
    return {
        "ID": ids,
        "String": texts,
        "DateTime": date_times,
        "Date": dates,
        "Time": times,
        "Decimal": decimals,
        "Int": ints,
    }


def _generate(strategy: st.SearchStrategy[str], examples: int) -> list[str]:
    collected: list[str] = []

    @settings(GENERATION, max_examples=examples)
    @given(strategy)
    def collect(operation: str) -> None:
        collected.append(operation)

    if SEED is not None:
        collect = seed(int(SEED))(collect)

    collect()
    return list(dict.fromkeys(collected))


def per_field(kind: str, options: dict) -> st.SearchStrategy[str]:
    make = hg.queries if kind == "query" else hg.mutations
    root = SCHEMA.query_type if kind == "query" else SCHEMA.mutation_type
    assert root is not None
    return st.one_of([make(SCHEMA, fields=[name], **options) for name in root.fields])


def operations(options: dict) -> list[str]:
    """options: hypothesis-graphql's custom_scalars and print_ast."""
    generated = (
        _generate(per_field("query", options), QUERY_EXAMPLES)
        + _generate(per_field("mutation", options), MUTATION_EXAMPLES)
        + _generate(hg.from_schema(SCHEMA, **options), MIXED_EXAMPLES)
        + _generate(hg.from_schema(SCHEMA, **options, mode=hg.Mode.NEGATIVE), NEGATIVE_EXAMPLES)
    )
    return list(dict.fromkeys(generated))


def with_variables(operation: str) -> tuple[str, dict]:
    """The operation with every argument value moved into a variable: clients send input
    that way, and variables take another path (coercion from JSON, parse_value) than
    literals (parse_literal)."""
    document = graphql.parse(operation)
    type_info = graphql.TypeInfo(SCHEMA)
    variables: dict = {}
    definitions: list[graphql.VariableDefinitionNode] = []

    class ToVariables(graphql.Visitor):
        def enter_argument(self, node, *_):
            argument = type_info.get_argument()
            if argument is None:  # not in the schema (Mode.NEGATIVE): left as it is
                return None
            variable = graphql.VariableNode(name=graphql.NameNode(value=f"v{len(variables)}"))
            variables[variable.name.value] = graphql.value_from_ast_untyped(node.value)
            type_ = graphql.parse_type(str(argument.type))
            definitions.append(graphql.VariableDefinitionNode(variable=variable, type=type_))
            return graphql.ArgumentNode(name=node.name, value=variable)

        def leave_operation_definition(self, node, *_):
            return replace(node, variable_definitions=tuple(definitions))

    edited = graphql.visit(document, graphql.TypeInfoVisitor(type_info, ToVariables()))
    return graphql.print_ast(edited), variables


# --- Callers ------------------------------------------------------------------------------


@dataclass
class Caller:
    name: str
    role: Role | None
    headers: dict[str, str] = field(default_factory=dict)
    reissued: int = 0


async def sign_in(services, caller: Caller, pool: Pool) -> None:
    """A fresh account and token for the caller (again after a mutation revoked it)."""
    if caller.role is None:
        return
    token = await issue_token(
        services,
        caller.role,
        patient_id=pool.patient if caller.role is Role.PATIENT else None,
        doctor_id=pool.doctor if caller.role is Role.DOCTOR else None,
    )
    caller.headers = {"Authorization": f"Bearer {token}"}


# Mutations that end sessions: the caller's own, or (admins) any account's, and so
# possibly another caller's (the account ids drawn include theirs).
ENDS_OWN_SESSION = {"logout", "changePassword", "confirmMfa"}
ENDS_ANY_SESSION = {"disableUser", "resetMfa", "changeUserRole"}


def possibly_signed_out(caller: Caller, operation: str, callers: list[Caller]) -> list[Caller]:
    fields = set(root_fields(operation)[1])
    if caller.role is Role.ADMIN and fields & ENDS_ANY_SESSION:
        return [other for other in callers if other.role is not None]
    if caller.role is not None and fields & ENDS_OWN_SESSION:
        return [caller]
    return []


async def still_signed_in(http: httpx.AsyncClient, caller: Caller) -> bool:
    """Generated mutations may log the caller out, disable them or change their role."""
    response = await http.post(
        "/graphql", json={"query": "{ me { role } }"}, headers=caller.headers
    )
    me = ((response.json().get("data") or {}).get("me")) or {}
    assert caller.role is not None, "an anonymous caller is never signed in"
    return me.get("role") == caller.role.value


# --- Checking one response ----------------------------------------------------------------


@dataclass
class Outcome:
    executed: bool  # false: refused before execution (parse, validation, limits, coercion)
    codes: list[str]
    problems: list[str]  # each names what is wrong, the first words stable across runs
    culprits: list[str]  # root fields the bad errors came from, when they say


def check(response: httpx.Response) -> Outcome:
    if response.status_code >= 500:
        return Outcome(False, [], [f"HTTP {response.status_code}: {response.text[:300]}"], [])
    try:
        body = response.json()
    except ValueError:
        return Outcome(
            False, [], [f"not JSON (HTTP {response.status_code}): {response.text[:300]}"], []
        )
    if not isinstance(body, dict):
        return Outcome(False, [], [f"not a JSON object: {response.text[:300]}"], [])
    problems: list[str] = []
    codes: list[str] = []
    culprits: list[str] = []
    sent = unquote(str(response.request.url)) + response.request.content.decode(errors="replace")
    for error in body.get("errors") or []:
        code = ((error.get("extensions") or {}) if isinstance(error, dict) else {}).get("code")
        codes.append(str(code))
        message = str(error.get("message")) if isinstance(error, dict) else repr(error)
        bad = []
        if not isinstance(code, str):
            bad.append("error without extensions.code")
        elif code == "INTERNAL_SERVER_ERROR":
            bad.append("INTERNAL_SERVER_ERROR")
        # Text the client sent itself (a generated "sqlite:///" argument quoted back in
        # a coercion error) is not a leak: only what the server adds is.
        leak = next((m for m in LEAKS.finditer(message) if m.group(0) not in sent), None)
        if leak:
            bad.append(f"message leaks {leak.group(0)!r}")
        if bad:
            path = error.get("path") or []
            problems += [f"{what} at {path}: {message[:200]}" for what in bad]
            if path:
                culprits.append(str(path[0]))
    executed = body.get("data") is not None
    if not executed and not body.get("errors"):
        problems.append(f"neither data nor errors (HTTP {response.status_code})")
    return Outcome(executed, codes, problems, culprits)


def signature(problem: str) -> str:
    """What two failures must share to count as the same problem."""
    return re.sub(r" at \[.*", "", problem)[:80]


# --- The test -----------------------------------------------------------------------------


@dataclass
class Failure:
    caller: Caller
    operation: str
    as_variables: bool
    problems: list[str]
    culprits: list[str]


@dataclass
class Tally:
    sent: Counter = field(default_factory=Counter)
    with_variables: int = 0
    executed: Counter = field(default_factory=Counter)
    codes: Counter = field(default_factory=Counter)
    refusals: Counter = field(default_factory=Counter)


def root_fields(operation: str) -> tuple[str, list[str]]:
    document = graphql.parse(operation)
    definition = document.definitions[0]
    assert isinstance(definition, graphql.OperationDefinitionNode)
    names = [
        selection.name.value
        for selection in definition.selection_set.selections
        if isinstance(selection, graphql.FieldNode)
    ]
    return definition.operation.value, names


async def test_generated_operations_never_fail_on_the_server(app, services, demo):
    started = time.monotonic()
    pool = await real_records(services)
    callers = [Caller(role.name, role) for role in Role] + [Caller("anonymous", None)]
    for caller in callers:
        await sign_in(services, caller, pool)
    pool = await real_records(services)  # again, with the callers' accounts
    options = {"custom_scalars": scalar_strategies(), "print_ast": printer(pool)}

    generated = operations(options)
    generation_s = time.monotonic() - started
    assert len(generated) >= MINIMUM_OPERATIONS, f"only {len(generated)} distinct operations"

    tally = Tally()
    failures: list[Failure] = []
    # A 500 must come back as a response to check, not as an exception in the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
        AsyncExitStack() as stack,
    ):
        log = stack.enter_context(open(LOG_PATH, "w")) if LOG_PATH else None  # noqa: ASYNC230

        async def send(operation: str, caller: Caller, as_variables: bool = False) -> Outcome:
            body: dict[str, Any] = {"query": operation}
            if as_variables:
                body["query"], body["variables"] = with_variables(operation)
            response = await http.post("/graphql", json=body, headers=caller.headers)
            if log is not None:
                line = {"caller": caller.name, **body, "status": response.status_code}
                log.write(json.dumps({**line, "body": response.text}) + "\n")
            return check(response)

        for index, operation in enumerate(generated):
            # Each caller in turn; every other round sends the arguments as variables.
            caller = callers[index % len(callers)]
            as_variables = (index // len(callers)) % 2 == 1
            outcome = await send(operation, caller, as_variables)
            tally.sent[caller.name] += 1
            tally.with_variables += as_variables
            tally.executed[caller.name] += outcome.executed
            tally.codes.update(outcome.codes)
            if not outcome.executed and outcome.codes:
                tally.refusals[outcome.codes[0]] += 1
            if outcome.problems:
                failures.append(
                    Failure(caller, operation, as_variables, outcome.problems, outcome.culprits)
                )
            for affected in possibly_signed_out(caller, operation, callers):
                if not await still_signed_in(http, affected):
                    await sign_in(services, affected, pool)
                    affected.reissued += 1
        sending_s = time.monotonic() - started - generation_s

        loop = asyncio.get_running_loop()

        def send_from_thread(operation: str, caller: Caller, as_variables: bool) -> Outcome:
            # Runs `send` on the event loop, which is free: the test awaits the thread.
            sent = send(operation, caller, as_variables)
            return asyncio.run_coroutine_threadsafe(sent, loop).result(60)

        minimised = {}
        if failures:
            minimised = await asyncio.to_thread(minimise_all, failures, options, send_from_thread)

    print_summary(
        tally, callers, len(generated), generation_s, sending_s, time.monotonic() - started
    )
    total = sum(tally.sent.values())
    assert sum(tally.executed.values()) >= total // 2, "most operations must reach execution"
    if failures:
        pytest.fail(report(failures, minimised), pytrace=False)


def minimise_all(
    failures: list[Failure],
    options: dict,
    send: Callable[[str, Caller, bool], Outcome],
) -> dict[str, str]:
    """The smallest operation Hypothesis finds for each distinct problem (worker thread)."""
    first_of: dict[str, Failure] = {}
    for failure in failures:
        for problem in failure.problems:
            first_of.setdefault(signature(problem), failure)
    minimised: dict[str, str] = {}
    for wanted, failure in list(first_of.items())[:MINIMISED_PROBLEMS]:
        kind, names = root_fields(failure.operation)
        fields = failure.culprits[:1] or names
        make = hg.queries if kind == "query" else hg.mutations

        def same_problem(operation: str, failure=failure, wanted=wanted) -> bool:
            outcome = send(operation, failure.caller, failure.as_variables)
            return any(signature(problem) == wanted for problem in outcome.problems)

        try:
            minimised[wanted] = find(
                make(SCHEMA, fields=fields, **options),
                same_problem,
                settings=settings(
                    GENERATION, max_examples=300, phases=[Phase.generate, Phase.shrink]
                ),
            )
        except NoSuchExample:
            # Typically a failure that needs state earlier operations made.
            minimised[wanted] = "(not reproduced by an operation on its own)"
    return minimised


def report(failures: list[Failure], minimised: dict[str, str]) -> str:
    by_problem: dict[str, list[Failure]] = defaultdict(list)
    for failure in failures:
        for problem in failure.problems:
            by_problem[signature(problem)].append(failure)
    lines = [f"{len(failures)} operations failed, {len(by_problem)} distinct problems:"]
    for wanted, seen in by_problem.items():
        lines.append(f"\n=== {wanted}  ({len(seen)} operations)")
        details = next(p for p in seen[0].problems if signature(p) == wanted)
        lines.append(f"first: {details}")
        if wanted in minimised:
            lines.append(f"minimal example:\n{minimised[wanted]}")
        for failure in seen[:3]:
            text = failure.operation
            if failure.as_variables:
                query, variables = with_variables(text)
                text = f"{query}\nvariables: {json.dumps(variables)}"
            lines.append(f"-- as {failure.caller.name}:\n{text[:1500]}")
    return "\n".join(lines)


def print_summary(
    tally: Tally, callers: list[Caller], total: int, generation_s, sending_s, elapsed_s
) -> None:
    print(
        f"\nfuzz: {total} operations ({tally.with_variables} with variables); generation "
        f"{generation_s:.1f} s, sending {sending_s:.1f} s, total {elapsed_s:.1f} s"
    )
    for caller in callers:
        sent, executed = tally.sent[caller.name], tally.executed[caller.name]
        print(
            f"  {caller.name:<11} sent {sent:>4}  executed {executed:>4}  "
            f"refused before execution {sent - executed:>4}  tokens reissued {caller.reissued}"
        )
    print(f"  refused before execution, by first code: {dict(tally.refusals.most_common())}")
    print(f"  error codes: {json.dumps(dict(tally.codes.most_common()))}")
