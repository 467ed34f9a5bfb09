"""What the indexes do on the embedded server: explain() and timings of the main list
queries and of each report pipeline's $match, with the indexes and without them.

    .venv/bin/python -m benchmarks.explain_indexes [--size default|large] [--repeats 5]

Starts its own embedded MongoDB (secantusd-py) and SQLite file in a temporary directory
and loads the demo data (seed 42). The queries are built by the application's own code,
so they stay what the API sends:

- list queries as DocumentStore.page issues them (filter from the store's search_filter,
  the store's default sort, limit = default page size + 1): the first page of
  appointments and of patients (no filter), appointments of one doctor in a four-week
  range, appointments of one patient, prescriptions of one patient,
  patients by name (a prefix, as name search sends it), doctors of one specialty;
- the $match of every report pipeline, captured from datasources/reports.py (and the
  $match of the prescriptions sub-pipeline of diseaseTreatmentDurations' $unionWith),
  for the default call (no period) and for a 90-day period.

For each: the winning plan (stage names, index), keys and documents examined and
documents returned, from explain (executionStats); then the median time of the query
itself (the find with its sort and limit; for a $match, the $match followed by a
server-side count, so the time is the selection and not the transfer of every match).
All of it once with the indexes ensured at start (datasources/mongo.py INDEXES), then
again after drop_indexes() on every indexed collection of this temporary database, and
the indexes are re-created with ensure_indexes() at the end (even on error) and checked.

The client's MongoDB timeout is raised to 300 s (the app's is 10 s): without indexes,
some of these queries take longer than 10 s at --size large, and that is the point.

The embedded server is not mongod: its planner is simpler (MONGODB_NOTES.md) and the
times are those of a Python server. The summary says where an index is used, where it
cuts the documents examined, and where it does not help here.

Exit status: 0 on success; 1 when a query answers differently with and without the
indexes; 2 when the benchmark fails (data not loaded in time, indexes not restored).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from time import perf_counter
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.harness import BenchmarkError, embedded_app, load_text, run_benchmark
from datasources.appointments import AppointmentStore
from datasources.mongo import INDEXES, ensure_indexes
from datasources.people import DoctorStore, PatientStore
from datasources.prescriptions import PrescriptionStore
from datasources.reports import ReportStore
from demo.generator import SIZES, default_anchor, load_demo_data
from settings import Settings

# Per case and mode: at most --repeats timed runs after one warm-up, within this time.
CASE_MAX_SECONDS = 15.0
LOAD_TIMEOUT_SECONDS = {"small": 120.0, "default": 300.0, "large": 1500.0}
# The app's own 10 s MongoDB timeout is for requests; a full-collection sort without
# indexes at --size large takes longer than that here, and is what this measures.
MONGODB_TIMEOUT_MS = 300_000
# A speed-up below this is "no real gain" in the summary.
GAIN_THRESHOLD = 1.5
REPORT_PERIOD_DAYS = 90
LIST_RANGE_DAYS = 28


@dataclass(frozen=True)
class Case:
    name: str
    collection: str
    filter: dict
    # A list query: sorted and limited as DocumentStore.page does. None: a $match.
    sort: list[tuple[str, int]] | None = None
    limit: int | None = None

    @property
    def page(self) -> tuple[list[tuple[str, int]], int] | None:
        """A list query's sort and limit; None for a $match."""
        if self.sort is None or self.limit is None:
            return None
        return self.sort, self.limit

    @property
    def kind(self) -> str:
        return "find" if self.page is not None else "$match"


@dataclass
class Observation:
    plan: str
    indexes: str
    keys_examined: int | None
    docs_examined: int | None
    returned: int | None
    explain_ms: int | None
    median_ms: float
    runs: int
    # What the query answered: the ids in order (find) or the count ($match).
    answer: Any


# --- the cases -------------------------------------------------------------------------


class CapturingReportStore(ReportStore):
    """The report pipelines as datasources/reports.py builds them, not run."""

    def __init__(self, db: AsyncDatabase, engine: AsyncEngine) -> None:
        super().__init__(db, engine)  # the engine is unused: these reports read MongoDB
        self.captured: list[tuple[str, list[dict]]] = []

    async def _aggregate(self, collection: str, pipeline: list[dict]) -> list[dict]:
        self.captured.append((collection, pipeline))
        return []


async def report_cases(db: AsyncDatabase, engine: AsyncEngine, anchor: datetime) -> list[Case]:
    store = CapturingReportStore(db, engine)
    period_from, period_before = anchor - timedelta(days=REPORT_PERIOD_DAYS), anchor
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    calls: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    for label, start, before in (
        ("", None, None),
        (f", {REPORT_PERIOD_DAYS} days", period_from, period_before),
    ):
        calls += [
            (
                f"topDoctors{label}",
                partial(store.doctor_activity, starts_from=start, before=before),
            ),
            (
                f"diseaseTreatmentDurations{label}",
                partial(
                    store.treatment_episodes,
                    starts_from=start,
                    before=before,
                    open_until=min(before, now) if before else now,
                ),
            ),
            (
                f"averagePrescriptionCost{label}",
                partial(store.prescription_costs, starts_from=start, before=before),
            ),
        ]
    year = (anchor - timedelta(days=73)).year
    calls.append((f"monthlyAppointmentTrend {year}", lambda: store.monthly_appointments(year=year)))
    cases = []
    for name, call in calls:
        store.captured.clear()
        await call()
        for collection, pipeline in store.captured:
            cases.append(Case(f"{name}: $match", collection, pipeline[0]["$match"]))
            for stage in pipeline:
                union = stage.get("$unionWith")
                if union and union["pipeline"] and "$match" in union["pipeline"][0]:
                    cases.append(
                        Case(
                            f"{name}: $unionWith {union['coll']} $match",
                            union["coll"],
                            union["pipeline"][0]["$match"],
                        )
                    )
    return cases


async def list_cases(db: AsyncDatabase, anchor: datetime, page_size: int) -> list[Case]:
    """Parameters picked from the data: the first records in natural (insertion) order.
    Not the first by _id: this server sorts a whole collection scan for that."""
    appointment = await db["appointments"].find_one({})
    prescription = await db["prescriptions"].find_one({})
    if appointment is None or prescription is None:
        raise BenchmarkError("no demo data to query")
    doctor = await db["doctors"].find_one({"_id": appointment["doctorId"]})
    patient = await db["patients"].find_one({"_id": prescription["patientId"]})
    if doctor is None or patient is None:
        raise BenchmarkError("demo data refers to a missing doctor or patient")
    prefix = patient["familyName"][:3]
    limit = page_size + 1

    def listing(label: str, store: Any, **criteria: Any) -> Case:
        return Case(
            label,
            store.collection_name,
            store.search_filter(**criteria),
            sort=list(store.default_sort),
            limit=limit,
        )

    return [
        listing("appointments, first page (no filter)", AppointmentStore),
        listing("patients, first page (no filter)", PatientStore),
        listing(
            f"appointments of a doctor, {LIST_RANGE_DAYS} days",
            AppointmentStore,
            doctor_id=doctor["_id"],
            starts_from=anchor - timedelta(days=LIST_RANGE_DAYS),
            starts_before=anchor,
        ),
        listing("appointments of a patient", AppointmentStore, patient_id=patient["_id"]),
        listing("prescriptions of a patient", PrescriptionStore, patient_id=patient["_id"]),
        listing(f"patients named {prefix!r}...", PatientStore, name=prefix),
        listing(f"doctors in {doctor['specialty']}", DoctorStore, specialty=doctor["specialty"]),
    ]


# --- explain and timing ----------------------------------------------------------------


def render_plan(node: dict) -> str:
    """Stage names from the root down: SORT>FETCH>IXSCAN; branches in parentheses."""
    children = node.get("inputStages") or ([node["inputStage"]] if "inputStage" in node else [])
    name = str(node.get("stage", "?"))
    if len(children) == 1:
        return f"{name}>{render_plan(children[0])}"
    if children:
        return f"{name}({','.join(render_plan(child) for child in children)})"
    return name


def index_names(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["indexName"]] if "indexName" in node else []
        for value in node.values():
            found += index_names(value)
        return found
    if isinstance(node, list):
        return [name for item in node for name in index_names(item)]
    return []


def find_key(node: Any, key: str) -> Any:
    """The first value under `key` anywhere in an explain document (find and aggregate
    explains nest the planner's output differently)."""
    children: Iterable[Any]
    if isinstance(node, dict):
        if key in node:
            return node[key]
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = find_key(child, key)
        if found is not None:
            return found
    return None


async def explain(db: AsyncDatabase, case: Case) -> dict:
    if case.page is not None:
        sort, limit = case.page
        cursor = db[case.collection].find(case.filter).sort(sort).limit(limit)
        return await cursor.explain()
    command = {"aggregate": case.collection, "pipeline": [{"$match": case.filter}], "cursor": {}}
    return await db.command("explain", command, verbosity="executionStats")


async def run_once(db: AsyncDatabase, case: Case) -> Any:
    collection = db[case.collection]
    if case.page is not None:
        sort, limit = case.page
        cursor = collection.find(case.filter, projection={"_id": 1}).sort(sort)
        rows = await cursor.limit(limit).batch_size(limit + 1).to_list()
        return [row["_id"] for row in rows]
    pipeline = [{"$match": case.filter}, {"$group": {"_id": None, "n": {"$sum": 1}}}]
    rows = await (await collection.aggregate(pipeline)).to_list()
    return rows[0]["n"] if rows else 0


async def observe(db: AsyncDatabase, case: Case, repeats: int) -> Observation:
    report = await explain(db, case)
    planner = find_key(report, "queryPlanner") or {}
    winning = planner.get("winningPlan") or {}
    stats = find_key(report, "executionStats") or {}
    durations: list[float] = []
    deadline = perf_counter() + CASE_MAX_SECONDS
    answer = None
    for run in range(repeats + 1):
        started = perf_counter()
        answer = await run_once(db, case)
        elapsed = (perf_counter() - started) * 1000
        if run > 0 or perf_counter() > deadline:  # the warm-up counts only if alone
            durations.append(elapsed)
        if perf_counter() > deadline:
            break
    names = sorted(set(index_names(winning)))
    return Observation(
        plan=render_plan(winning) if winning else "?",
        indexes=",".join(names) or "-",
        keys_examined=stats.get("totalKeysExamined"),
        docs_examined=stats.get("totalDocsExamined"),
        returned=stats.get("nReturned"),
        explain_ms=stats.get("executionTimeMillis"),
        median_ms=statistics.median(durations),
        runs=len(durations),
        answer=answer,
    )


async def observe_all(
    db: AsyncDatabase, cases: list[Case], repeats: int, label: str
) -> list[Observation]:
    observations = []
    for number, case in enumerate(cases, start=1):
        started = perf_counter()
        observations.append(await observe(db, case, repeats))
        print(
            f"  {label} {number}/{len(cases)} {case.name}: {perf_counter() - started:.1f} s",
            flush=True,
        )
    return observations


async def index_names_by_collection(db: AsyncDatabase) -> dict[str, set[str]]:
    return {name: set(await db[name].index_information()) for name in INDEXES}


async def without_indexes(db: AsyncDatabase, cases: list[Case], repeats: int) -> list[Observation]:
    """The same observations after dropping every non-_id index; the indexes are
    re-created (and checked) afterwards, even if something fails in between."""
    expected = await index_names_by_collection(db)
    try:
        for collection in INDEXES:
            await db[collection].drop_indexes()
        left = await index_names_by_collection(db)
        if any(names - {"_id_"} for names in left.values()):
            raise BenchmarkError(f"indexes left after drop_indexes(): {left}")
        return await observe_all(db, cases, repeats, "without indexes")
    finally:
        started = perf_counter()
        await ensure_indexes(db)
        restored = await index_names_by_collection(db)
        print(f"  indexes re-created with ensure_indexes in {perf_counter() - started:.1f} s")
        if restored != expected:
            raise BenchmarkError(f"indexes not restored: {restored} != {expected}")


# --- planner probes --------------------------------------------------------------------


def variants(filter: dict) -> list[tuple[str, dict]]:
    """Simpler filters that select the same kind of rows, to see what stops this planner
    from using an index: a one-clause $and unwrapped, each predicate alone, an anchored
    prefix regex as a range. Not what the app sends."""
    found: list[tuple[str, dict]] = []
    if set(filter) == {"$and"} and len(filter["$and"]) == 1:
        inner = filter["$and"][0]
        found.append(("the one-clause $and unwrapped", inner))
        return found + [(f"unwrapped, {label}", probe) for label, probe in variants(inner)]
    if len(filter) > 1:
        found += [(f"{key} alone", {key: filter[key]}) for key in filter]
    for key, condition in filter.items():
        pattern = condition.get("$regex") if isinstance(condition, dict) else None
        if isinstance(pattern, str) and re.fullmatch(r"\^[a-z0-9]+", pattern):
            prefix = pattern[1:]
            upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
            found.append((f"{key} prefix as a range", {key: {"$gte": prefix, "$lt": upper}}))
    return found


@dataclass
class Probe:
    case: Case
    label: str
    plan: str
    indexes: str
    docs_examined: int | None
    returned: int | None


async def planner_probes(
    db: AsyncDatabase, cases: list[Case], observations: list[Observation]
) -> list[Probe]:
    """For each query that used no index although the collection has indexes."""
    probes = []
    for case, seen in zip(cases, observations, strict=True):
        if seen.indexes != "-":
            continue
        for label, probe_filter in variants(case.filter):
            probe_case = Case(case.name, case.collection, probe_filter, case.sort, case.limit)
            report = await explain(db, probe_case)
            winning = (find_key(report, "queryPlanner") or {}).get("winningPlan") or {}
            stats = find_key(report, "executionStats") or {}
            probes.append(
                Probe(
                    case,
                    label,
                    render_plan(winning) if winning else "?",
                    ",".join(sorted(set(index_names(winning)))) or "-",
                    stats.get("totalDocsExamined"),
                    stats.get("nReturned"),
                )
            )
    return probes


def print_probes(probes: list[Probe]) -> None:
    print(
        "\nPlanner probes, with the indexes: simpler filters for the queries that used no\n"
        "index (not what the app sends; they show what this planner needs to pick one)"
    )
    print(f"{'query':<52} {'variant':<40} {'plan':<22} {'index':<14} {'docs':>6} {'nRet':>6}")
    for probe in probes:
        print(
            f"{probe.case.name:<52} {probe.label:<40} {probe.plan:<22} {probe.indexes:<14} "
            f"{number(probe.docs_examined):>6} {number(probe.returned):>6}"
        )


# --- report ----------------------------------------------------------------------------


def number(value: int | None) -> str:
    return "?" if value is None else str(value)


def print_table(cases: list[Case], with_idx: list[Observation], without: list[Observation]):
    print(
        f"\n{'query':<58} {'indexes':<8} {'winning plan':<26} {'index used':<16} "
        f"{'keys':>7} {'docs':>7} {'nRet':>7} {'expl ms':>7} {'median ms':>9} {'runs':>4}"
    )
    for case, first, second in zip(cases, with_idx, without, strict=True):
        for label, seen in (("with", first), ("without", second)):
            name = f"[{case.kind}] {case.name} ({case.collection})" if label == "with" else ""
            print(
                f"{name:<58} {label:<8} {seen.plan:<26} {seen.indexes:<16} "
                f"{number(seen.keys_examined):>7} {number(seen.docs_examined):>7} "
                f"{number(seen.returned):>7} {number(seen.explain_ms):>7} "
                f"{seen.median_ms:>9.1f} {seen.runs:>4}"
            )
    print(
        "  keys/docs/nRet: totalKeysExamined, totalDocsExamined, nReturned from explain\n"
        "  (executionStats; as this server reports them: for a find with a limit, nReturned\n"
        "  may count the matches before the limit). expl ms: the server's\n"
        "  executionTimeMillis. median ms: the query itself, timed from this client (a find\n"
        "  returning _ids; a $match followed by a server-side count)."
    )
    print("  filters:")
    for case in cases:
        text = repr(case.filter)
        print(f"    {case.name}: {text[:150]}{'...' if len(text) > 150 else ''}")


def verdict(with_idx: Observation, without: Observation) -> str:
    gain = without.median_ms / with_idx.median_ms if with_idx.median_ms else float("inf")
    if with_idx.indexes == "-":
        if gain >= GAIN_THRESHOLD:
            return (
                f"explain shows no index (same plan without), yet x{gain:.1f} faster with the "
                "indexes: this server's explain() does not show all its executor does"
            )
        return f"no index used; x{gain:.1f} (same plan without indexes)"
    fewer_docs = (
        with_idx.docs_examined is not None
        and without.docs_examined is not None
        and with_idx.docs_examined < without.docs_examined
    )
    examined = (
        f"docs examined {with_idx.docs_examined} vs {without.docs_examined}"
        if fewer_docs
        else "no fewer docs examined"
    )
    helps = "helps" if gain >= GAIN_THRESHOLD else "does NOT help here"
    return f"{with_idx.indexes}: {examined}; x{gain:.1f} faster: {helps}"


def print_summary(
    cases: list[Case], with_idx: list[Observation], without: list[Observation]
) -> int:
    print("\nSummary (speed-up = median without / median with indexes)")
    differing = 0
    for case, first, second in zip(cases, with_idx, without, strict=True):
        same = first.answer == second.answer
        differing += not same
        note = "" if same else "  ANSWERS DIFFER with and without indexes"
        print(f"  {case.name}: {verdict(first, second)}{note}")
    print(
        "  every query answered the same with and without indexes"
        if not differing
        else f"  {differing} queries answered differently with and without indexes"
    )
    return 1 if differing else 0


# --- main ------------------------------------------------------------------------------


async def run(size: str, repeats: int, load_timeout: float) -> int:
    started = perf_counter()
    async with embedded_app(
        temp_prefix="caregraph-bench-",
        database="caregraph_bench",
        mongodb_timeout_ms=MONGODB_TIMEOUT_MS,
    ) as app:
        services, db = app.services, app.services.db
        anchor_day: date = default_anchor()
        anchor = datetime(anchor_day.year, anchor_day.month, anchor_day.day, tzinfo=UTC)
        print(
            f"loading demo data (size={size}, seed 42; at most {load_timeout:g} s) ...",
            flush=True,
        )
        try:
            counts = await asyncio.wait_for(
                load_demo_data(
                    services, seed=42, size=size, anchor=anchor_day, progress=size == "large"
                ),
                timeout=load_timeout,
            )
        except TimeoutError:
            raise BenchmarkError(f"the demo data did not load within {load_timeout:g} s") from None
        print(
            f"CareGraph indexes benchmark: size={size} ({counts}), loaded in "
            f"{perf_counter() - started:.0f} s; anchor {anchor_day}; {load_text()}",
            flush=True,
        )
        page_size = Settings().page_size_default
        cases = await list_cases(db, anchor, page_size) + await report_cases(
            db, services.engine, anchor
        )
        with_idx = await observe_all(db, cases, repeats, "with indexes")
        probes = await planner_probes(db, cases, with_idx)
        without = await without_indexes(db, cases, repeats)
        print_table(cases, with_idx, without)
        print_probes(probes)
        status = print_summary(cases, with_idx, without)
        print(f"machine at end: {load_text()}; total {perf_counter() - started:.0f} s")
        return status


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs per query and mode, after a warm-up"
    )
    parser.add_argument(
        "--load-timeout",
        type=float,
        default=None,
        help="seconds allowed for loading the demo data (default: by size)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.repeats <= 100:
        parser.error("--repeats must be in 1..100")
    if args.load_timeout is None:
        args.load_timeout = LOAD_TIMEOUT_SECONDS[args.size]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(run(args.size, args.repeats, args.load_timeout))


if __name__ == "__main__":
    sys.exit(main())
