"""Event-loop lag while concurrent logins hash passwords (bcrypt at the real cost).

    .venv/bin/python -m benchmarks.login_lag [--logins 20] [--diagnose]

Starts its own embedded MongoDB in a temporary directory, opens the app (lifespan) with
the default bcrypt cost (Settings().bcrypt_rounds, 12) and a fixed JWT secret, creates
one account per login, then fires the `login` mutations all at once through
httpx.ASGITransport while a probe task does `await asyncio.sleep(0.005)` in a loop and
records how late each wake-up is. Any synchronous work on the event loop (bcrypt, JWT
signing, JSON, GraphQL parsing, driver code) shows up as probe lag: it is the delay
every other request on this process would see.

The logins mix correct passwords, wrong passwords and unknown emails (an unknown email
is checked against a dummy hash, for equal timing). Each login uses its own account and
its own client address (per measurement), and each account is tried once per
measurement (at most 4 measurements, so at most 4 attempts a minute), so the login
throttle (5 attempts per account per minute, 50 per address) never answers instead of
bcrypt; an unexpected answer fails the run.

bcrypt releases the GIL, and asyncio.to_thread uses the loop's default executor
(min(32, cpus + 4) threads), so on a 2-core machine 6 hashes run at once on 2 cores.

Measurements, in this order, on one process:

1. worker thread, cold: bcrypt in asyncio.to_thread, as shipped; the first logins after
   start-up, so one-time work (lazy imports, caches) is included;
2. worker thread, warm: the same again;
3. bcrypt ON the event loop: asyncio.to_thread inside auth.passwords replaced by a
   direct call, to show what the worker thread buys.

An idle probe run first gives the floor. Besides the lag, each measurement reports the
CPU time the event-loop thread used (in all, per login, and during the worst wake-up):
lag with loop CPU to match was code running on the loop; lag without it was the loop
waiting for a core.

--diagnose adds (a) a sampling thread that records the event-loop thread's stack
whenever the probe is overdue, to say what blocked it, and (b) one more warm run under
cProfile (CPU clock, event-loop thread only) broken down by component: GraphQL parse and
validation, context, resolvers, throttle (Redis), PyMongo, JWT signing, plus unprofiled
parse and validation times. The sampler slightly perturbs the measurements it watches;
the profiled run is not reported as a measurement.

Exit status: 0 when the warm as-shipped measurement meets the target (max lag < 50 ms);
1 when it does not; 2 when a login answers unexpectedly or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import math
import os
import pstats
import secrets
import statistics
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, thread_time
from types import FrameType
from typing import ParamSpec, TypeVar
from unittest import mock

import httpx
import orjson
from starlette.applications import Starlette

import auth.passwords as passwords
from auth.passwords import hash_password
from auth.roles import Role
from benchmarks.harness import BenchmarkError, embedded_app, percentile, run_benchmark
from datasources.scope import AccessScope
from datasources.users import UserStore
from runtime.services import Services
from settings import Settings

LOGIN_MUTATION = (
    "mutation Login($email: String!, $password: String!) { login(email: $email, "
    "password: $password) { __typename ... on AuthPayload { accessToken } } }"
)
DEFAULT_LOGINS = 20
LAG_TARGET_MS = 50.0
PROBE_INTERVAL_S = 0.005
# Bounds on the probe: it stops when the logins end, or at these limits.
PROBE_MAX_SAMPLES = 50_000
PROBE_MAX_SECONDS = 180.0
IDLE_PROBE_SECONDS = 0.5
# Bound on one measurement: a hung login must not hang the benchmark.
PHASE_TIMEOUT_S = 120.0
# A fixed signing key (long enough for HS256), so nothing is written for one.
JWT_SECRET = "login-lag-benchmark-" + "k" * 44
# Stall sampler (--diagnose): the loop counts as stalled once the probe is this overdue.
STALL_THRESHOLD_S = PROBE_INTERVAL_S + 0.005
STALL_SAMPLE_PERIOD_S = 0.001
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- environment ---------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    index: int
    kind: str  # "correct" | "wrong password" | "unknown email"
    email: str
    password: str
    client_ip: str

    @property
    def should_succeed(self) -> bool:
        return self.kind == "correct"


@dataclass
class Bench:
    app: Starlette
    services: Services
    rounds: int
    # (email, password) of each account created for the benchmark
    accounts: list[tuple[str, str]]


@asynccontextmanager
async def bench_environment(logins: int) -> AsyncIterator[Bench]:
    """Everything the benchmark needs; torn down in reverse order even on error."""
    rounds = Settings().bcrypt_rounds  # the real default cost, not the tests' one
    async with embedded_app(
        temp_prefix="caregraph-lag-",
        database="caregraph_login_lag",
        jwt_secret=JWT_SECRET,
        bcrypt_rounds=rounds,
    ) as embedded:
        print(f"creating {logins} accounts (bcrypt cost {rounds}) ...", flush=True)
        accounts = await create_accounts(embedded.services, logins, rounds)
        yield Bench(app=embedded.app, services=embedded.services, rounds=rounds, accounts=accounts)


async def create_accounts(services: Services, count: int, rounds: int) -> list[tuple[str, str]]:
    """Accounts made directly (as demo/accounts.py does): the logins are the subject."""
    users = UserStore(services.db, AccessScope.system())
    accounts = [(f"lag-{i:02d}@bench.invalid", secrets.token_urlsafe(16)) for i in range(count)]
    async with asyncio.timeout(PHASE_TIMEOUT_S), asyncio.TaskGroup() as group:
        tasks = [
            group.create_task(hash_password(password, rounds=rounds)) for _, password in accounts
        ]
    hashes = [task.result() for task in tasks]
    for (email, _), password_hash in zip(accounts, hashes, strict=True):
        await users.create(email=email, password_hash=password_hash, role=Role.ANALYST.value)
    return accounts


def login_plan(bench: Bench, phase: int) -> list[Login]:
    """Interleaved: of every 5 logins, 3 correct, 1 wrong password, 1 unknown email.

    Every login has its own account and client address; the unknown emails are new in
    every phase, so no throttle counter ever nears its limit.
    """
    plan = []
    for index, (email, password) in enumerate(bench.accounts):
        kind = {1: "wrong password", 3: "unknown email"}.get(index % 5, "correct")
        if kind == "wrong password":
            password = password + "-wrong"
        elif kind == "unknown email":
            email = f"nobody-{phase}-{index:02d}@bench.invalid"
        # 127.0.x.y: loopback addresses, only ever written into the ASGI scope.
        plan.append(Login(index, kind, email, password, f"127.0.{phase}.{10 + index}"))
    return plan


# --- the lag probe -------------------------------------------------------------------


@dataclass
class Heartbeat:
    """When the probe last woke; read by the stall sampler thread."""

    last: float = field(default_factory=perf_counter)


@dataclass(frozen=True)
class Wake:
    """One probe wake-up: how late it was, and how much CPU the event-loop thread used
    between going to sleep and waking. Lag with little loop CPU means the loop was
    waiting for a core (or the GIL), not running something slow."""

    lag_ms: float
    loop_cpu_ms: float
    slept_ms: float
    at_ms: float  # when it woke, since the probe started


async def lag_probe(stop: asyncio.Event, wakes: list[Wake], heartbeat: Heartbeat) -> None:
    """Sleep 5 ms at a time; record how late each wake-up is (actual - expected)."""
    probe_started = perf_counter()
    deadline = probe_started + PROBE_MAX_SECONDS
    while not stop.is_set() and len(wakes) < PROBE_MAX_SAMPLES and perf_counter() < deadline:
        before, cpu_before = perf_counter(), thread_time()
        await asyncio.sleep(PROBE_INTERVAL_S)
        woke, cpu = perf_counter(), thread_time()
        heartbeat.last = woke
        wakes.append(
            Wake(
                lag_ms=(woke - before - PROBE_INTERVAL_S) * 1000,
                loop_cpu_ms=(cpu - cpu_before) * 1000,
                slept_ms=(woke - before) * 1000,
                at_ms=(woke - probe_started) * 1000,
            )
        )


@contextmanager
def probing(heartbeat: Heartbeat) -> Iterator[list[Wake]]:
    """Run the probe for the duration of the block; yields its samples."""
    wakes: list[Wake] = []
    stop = asyncio.Event()
    heartbeat.last = perf_counter()
    task = asyncio.get_running_loop().create_task(lag_probe(stop, wakes, heartbeat))
    try:
        yield wakes
    finally:
        stop.set()
        task.cancel()  # the samples so far are kept; no need to wait for one more


# --- stall sampler (--diagnose) ------------------------------------------------------


def frame_text(frame: FrameType) -> str:
    path = Path(frame.f_code.co_filename)
    try:
        shown = str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        parts = path.parts
        shown = (
            "/".join(parts[parts.index("site-packages") + 1 :])
            if "site-packages" in parts
            else path.name
        )
    return f"{shown}:{frame.f_lineno} {frame.f_code.co_name}"


def is_project_frame(frame: FrameType) -> bool:
    """Application code: in this repository, not its virtualenv, not this benchmark."""
    filename = frame.f_code.co_filename
    if filename.startswith("<"):  # <frozen runpy>, <string>: not files at all
        return False
    path = Path(filename).resolve()
    return (
        path.is_relative_to(REPO_ROOT)
        and ".venv" not in path.parts
        and path != Path(__file__).resolve()
    )


class StallSampler(threading.Thread):
    """While the probe is overdue, sample the event-loop thread's stack every 1 ms.

    Each sample is keyed by the innermost frame and the innermost frame of this
    project's code: together they say what the loop was doing instead of waking up.
    An event loop sitting in selectors' select() while overdue was not blocked by
    Python code: it was waiting for a CPU (or the GIL). Blind spot: C code that holds the
    GIL (a garbage collection, some C extensions) cannot be sampled while it runs.
    """

    def __init__(self, heartbeat: Heartbeat, max_seconds: float) -> None:
        super().__init__(name="stall-sampler", daemon=True)
        self.heartbeat, self.max_seconds = heartbeat, max_seconds
        self.loop_thread_id = threading.get_ident()
        self.stop_event = threading.Event()
        self.samples: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()  # samples is read from the event-loop thread
        self.enabled = threading.Event()

    def run(self) -> None:
        deadline = perf_counter() + self.max_seconds
        while not self.stop_event.wait(STALL_SAMPLE_PERIOD_S) and perf_counter() < deadline:
            if not self.enabled.is_set():
                continue
            if perf_counter() - self.heartbeat.last < STALL_THRESHOLD_S:
                continue
            frame = sys._current_frames().get(self.loop_thread_id)
            if frame is None:
                continue
            innermost, project = frame_text(frame), None
            walker: FrameType | None = frame
            while walker is not None:
                if is_project_frame(walker):
                    project = frame_text(walker)
                    break
                walker = walker.f_back
            with self.lock:
                self.samples[(innermost, project or "-")] += 1

    @contextmanager
    def watching(self) -> Iterator[Counter[tuple[str, str]]]:
        """Samples taken during the block only."""
        with self.lock:
            before = Counter(self.samples)
        self.enabled.set()
        result: Counter[tuple[str, str]] = Counter()
        try:
            yield result
        finally:
            self.enabled.clear()
            with self.lock:
                result.update(self.samples - before)


# --- logins ----------------------------------------------------------------------------


@dataclass
class LoginResult:
    login: Login
    latency_ms: float
    outcome: str


def login_client(app: Starlette, login: Login) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(login.client_ip, 40_000 + login.index))
    return httpx.AsyncClient(transport=transport, base_url="http://bench", trust_env=False)


async def one_login(http: httpx.AsyncClient, login: Login) -> LoginResult:
    body = orjson.dumps(
        {"query": LOGIN_MUTATION, "variables": {"email": login.email, "password": login.password}}
    )
    started = perf_counter()
    response = await http.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    latency_ms = (perf_counter() - started) * 1000
    if response.status_code != 200:
        raise BenchmarkError(f"login {login.index}: HTTP {response.status_code} {response.text}")
    answer = orjson.loads(response.content)
    errors = answer.get("errors") or []
    if errors:
        outcome = errors[0].get("extensions", {}).get("code", "?")
    else:
        outcome = answer["data"]["login"]["__typename"]
    expected = "AuthPayload" if login.should_succeed else "UNAUTHENTICATED"
    if outcome != expected:
        raise BenchmarkError(
            f"login {login.index} ({login.kind}): expected {expected}, got {response.text[:300]}"
        )
    return LoginResult(login, latency_ms, outcome)


@dataclass
class Phase:
    name: str
    wakes: list[Wake]
    wall_s: float = 0.0
    # CPU time of the event-loop thread over the whole measurement (bcrypt in worker
    # threads is not in it; bcrypt on the loop is).
    loop_cpu_s: float = 0.0
    results: list[LoginResult] = field(default_factory=list)
    stalls: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def sorted_lags(self) -> list[float]:
        return sorted(wake.lag_ms for wake in self.wakes) or [math.nan]

    @property
    def worst(self) -> Wake | None:
        return max(self.wakes, key=lambda wake: wake.lag_ms, default=None)

    def late_count(self, threshold_ms: float) -> int:
        return sum(1 for wake in self.wakes if wake.lag_ms > threshold_ms)

    @property
    def max_lag_ms(self) -> float:
        return self.sorted_lags[-1]

    @property
    def p99_lag_ms(self) -> float:
        return percentile(self.sorted_lags, 0.99)

    @property
    def met(self) -> bool:
        return self.max_lag_ms < LAG_TARGET_MS

    def latency(self, kind: str | None = None) -> list[float]:
        return sorted(r.latency_ms for r in self.results if kind is None or r.login.kind == kind)


async def measure_idle(heartbeat: Heartbeat) -> Phase:
    with probing(heartbeat) as wakes:
        await asyncio.sleep(IDLE_PROBE_SECONDS)
    return Phase("idle (no logins)", list(wakes))


async def measure_logins(
    name: str, bench: Bench, plan: list[Login], heartbeat: Heartbeat, sampler: StallSampler | None
) -> Phase:
    async with AsyncExitStack() as stack:
        clients = []
        for login in plan:
            clients.append(await stack.enter_async_context(login_client(bench.app, login)))
        stalls: Counter[tuple[str, str]] = Counter()
        if sampler is not None:
            stalls = stack.enter_context(sampler.watching())
        with probing(heartbeat) as wakes:
            started, cpu_started = perf_counter(), thread_time()
            try:
                # A task group: on error, timeout or Ctrl-C every login is cancelled and
                # awaited before the services close under it.
                async with asyncio.timeout(PHASE_TIMEOUT_S), asyncio.TaskGroup() as group:
                    tasks = [
                        group.create_task(one_login(client, login))
                        for client, login in zip(clients, plan, strict=True)
                    ]
            except* BenchmarkError as failures:
                raise failures.exceptions[0] from None
            wall_s, loop_cpu_s = perf_counter() - started, thread_time() - cpu_started
        samples = list(wakes)
    results = [task.result() for task in tasks]
    return Phase(name, samples, wall_s, loop_cpu_s, results, stalls)


P = ParamSpec("P")
T = TypeVar("T")


class _AsyncioWithInlineToThread:
    """auth.passwords' view of asyncio, with to_thread calling the function directly,
    on the event loop. Only auth.passwords sees it; asyncio itself is untouched."""

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)

    @staticmethod
    async def to_thread(func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return func(*args, **kwargs)


@contextmanager
def bcrypt_on_event_loop() -> Iterator[None]:
    # patch.object rather than an assignment: `asyncio` is auth.passwords' own import,
    # not an attribute it exports.
    with mock.patch.object(passwords, "asyncio", _AsyncioWithInlineToThread()):
        yield


# --- where the loop's CPU goes (--diagnose) -----------------------------------------

# Where the event-loop thread's CPU goes (label, indent, matcher). ("function", file
# suffix, name): inclusive time of that function. ("module", path fragment): inclusive
# time spent entering that module from code outside it, whatever its functions are called
# (robust to renames). Indented rows are part of the row above them.
COMPONENTS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("whole request, httpx client (benchmark)", 0, ("function", "httpx/_client.py", "post")),
    ("app (from the ASGI call)", 1, ("function", "starlette/applications.py", "__call__")),
    ("GraphQL parse", 2, ("function", "graphql/language/parser.py", "parse")),
    ("GraphQL validate", 2, ("function", "graphql/validation/validate.py", "validate")),
    ("context (token check, stores)", 2, ("function", "/app.py", "get_context")),
    ("execute (resolvers)", 2, ("function", "strawberry/schema/schema.py", "_execute_operation")),
    ("login throttle (fakeredis, in-process)", 3, ("module", "/datasources/redis/throttle.py")),
    ("PyMongo (user by email, refresh token)", 3, ("module", "/pymongo/")),
    ("JWT signing (PyJWT)", 3, ("module", "/jwt/")),
    ("bcrypt hand-off (verify_password)", 3, ("function", "auth/passwords.py", "verify_password")),
)


def component_seconds(stats: dict, matcher: tuple[str, ...]) -> float:
    if matcher[0] == "function":
        _, suffix, function = matcher
        return sum(
            row[3]
            for (filename, _, name), row in stats.items()
            if name == function and filename.endswith(suffix)
        )
    fragment = matcher[1]
    total = 0.0
    for (filename, _, _), row in stats.items():
        if fragment not in filename:
            continue
        for (caller_file, _, _), caller_row in row[4].items():
            if fragment not in caller_file:
                total += caller_row[3]  # cumulative time of calls from that outside caller
    return total


async def profile_loop_cpu(
    bench: Bench, plan: list[Login], heartbeat: Heartbeat
) -> tuple[Phase, dict[str, float]]:
    """One more warm run under cProfile, timed by this thread's CPU clock: where the
    event loop's CPU goes per login. Profiling slows Python code several times (C code
    much less), so the shares matter, not the absolute numbers; this run's lag is not
    reported as a measurement."""
    profile = cProfile.Profile(thread_time)  # only this thread: the event loop
    profile.enable()
    try:
        phase = await measure_logins("profiled", bench, plan, heartbeat, None)
    finally:
        profile.disable()
    # Stats.stats is the raw table; get_stats_profile(), the typed view, drops the callers.
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]  # typeshed omits it
    return phase, {label: component_seconds(stats, matcher) for label, _, matcher in COMPONENTS}


def time_parse_and_validate(repeats: int = 200) -> tuple[float, float]:
    """Unprofiled cost of parsing and validating the login mutation, ms per request:
    the schema has no parser or validation cache, so every request pays both."""
    from graphql import parse, validate

    from schema import build_schema
    from settings import Settings

    graphql_schema = build_schema(Settings())._schema
    document = parse(LOGIN_MUTATION)
    started = perf_counter()
    for _ in range(repeats):
        parse(LOGIN_MUTATION)
    parse_ms = (perf_counter() - started) / repeats * 1000
    started = perf_counter()
    for _ in range(repeats):
        validate(graphql_schema, document)
    return parse_ms, (perf_counter() - started) / repeats * 1000


def print_loop_cpu(phase: Phase, totals: dict[str, float], logins: int) -> None:
    print(
        f"\nEvent-loop CPU per login, by component (an extra warm run under cProfile: "
        f"{phase.loop_cpu_s / logins * 1000:.1f} ms/login\n  profiled; profiling inflates "
        "Python code several times, C code much less: compare the shares)"
    )
    app_total = totals[COMPONENTS[1][0]] or math.nan
    for label, indent, _ in COMPONENTS:
        value = totals[label]
        print(
            f"  {'  ' * indent}{label:<{46 - 2 * indent}} {value / logins * 1000:>6.2f} ms "
            f"{value / app_total * 100:>5.0f}% of app"
        )
    parse_ms, validate_ms = time_parse_and_validate()
    print(
        f"  unprofiled, idle: parse {parse_ms:.2f} ms + validate {validate_ms:.2f} ms per "
        "login request (graphql-core, standard rules)"
    )


# --- report ----------------------------------------------------------------------------


def print_table(phases: list[Phase], logins: int) -> None:
    print(
        f"\nEvent-loop lag (probe: sleep {PROBE_INTERVAL_S * 1000:g} ms, lateness of each "
        f"wake-up) during {logins} concurrent logins"
    )
    print(
        f"{'measurement':<36} {'max lag':>8} {'p99 lag':>8} {'wall s':>7} "
        f"{'login med':>10} {'login max':>10} {'target':>8}"
    )
    for phase in phases:
        if phase.results:
            latencies = phase.latency()
            login_columns = (
                f"{phase.wall_s:>7.2f} {statistics.median(latencies):>10.0f} "
                f"{latencies[-1]:>10.0f} {'met' if phase.met else 'NOT met':>8}"
            )
        else:
            login_columns = f"{'-':>7} {'-':>10} {'-':>10} {'-':>8}"
        print(f"{phase.name:<36} {phase.max_lag_ms:>8.1f} {phase.p99_lag_ms:>8.1f} {login_columns}")
    print(
        "  lag in ms; wall s: first login sent to last answer; login med/max: per-login "
        f"latency, ms;\n  target: max lag < {LAG_TARGET_MS:g} ms"
    )


def print_lag_sources(phases: list[Phase], logins: int) -> None:
    print("\nWhere the lag comes from")
    print(
        f"{'measurement':<36} {'wakes':>6} {'>20 ms':>7} {'worst wake':>11} "
        f"{'its loop CPU':>13} {'woke at':>10} {'loop CPU/login':>15}"
    )
    for phase in phases:
        worst = phase.worst
        if worst is None:
            continue
        per_login = f"{phase.loop_cpu_s / logins * 1000:.1f} ms" if phase.results else "-"
        print(
            f"{phase.name:<36} {len(phase.wakes):>6} {phase.late_count(20):>7} "
            f"{worst.slept_ms:>8.1f} ms {worst.loop_cpu_ms:>10.1f} ms {worst.at_ms:>7.0f} ms "
            f"{per_login:>15}"
        )
    print(
        "  wakes: probe samples; worst wake: how long that 5 ms sleep really took; its loop "
        "CPU: CPU\n  the event-loop thread used meanwhile (close to the sleep: code ran on "
        "the loop; low: the\n  loop waited for a core); woke at: since the first login was "
        "sent; loop CPU/login: event-loop\n  thread CPU for the whole run / logins"
    )


def print_kinds(phases: list[Phase]) -> None:
    print("\nPer-login latency by kind, median / max ms")
    kinds = ("correct", "wrong password", "unknown email")
    print(f"{'measurement':<36} " + " ".join(f"{kind:>16}" for kind in kinds))
    for phase in phases:
        if not phase.results:
            continue
        cells = []
        for kind in kinds:
            values = phase.latency(kind)
            cells.append(
                f"{statistics.median(values):>7.0f} / {values[-1]:>6.0f}" if values else "-"
            )
        print(f"{phase.name:<36} " + " ".join(f"{cell:>16}" for cell in cells))


def print_stalls(phases: list[Phase]) -> None:
    for phase in phases:
        if not phase.results:
            continue
        total = sum(phase.stalls.values())
        print(
            f"\nWhere the event loop was while the probe was overdue > "
            f"{STALL_THRESHOLD_S * 1000:g} ms: {phase.name} "
            f"({total} samples of ~{STALL_SAMPLE_PERIOD_S * 1000:g} ms)"
        )
        for (innermost, project), count in phase.stalls.most_common(6):
            print(f"  {count:>5}  {innermost}  <- {project}")


def summary_line(phase: Phase, logins: int) -> str:
    return (
        f"max loop lag during {logins} concurrent logins: {phase.max_lag_ms:.1f} ms "
        f"(target < {LAG_TARGET_MS:g} ms: {'met' if phase.met else 'NOT met'})"
    )


# --- main ------------------------------------------------------------------------------


async def run(logins: int, diagnose: bool) -> int:
    async with bench_environment(logins) as bench:
        heartbeat = Heartbeat()
        sampler = None
        switch_interval = sys.getswitchinterval()
        if diagnose:
            sampler = StallSampler(heartbeat, max_seconds=4 * PHASE_TIMEOUT_S)
            # The sampler needs the GIL to look: with the default 5 ms switch interval it
            # would mostly see the loop where the loop releases the GIL (system calls).
            sys.setswitchinterval(STALL_SAMPLE_PERIOD_S)
            sampler.start()
        try:
            cpus = os.cpu_count() or 1
            print(
                f"CareGraph login lag benchmark: {logins} concurrent logins, bcrypt cost "
                f"{bench.rounds}, in-process ASGI; of every 5 logins 3 correct, 1 wrong "
                "password, 1 unknown email; each login its own account and client address; "
                f"default executor min(32, {cpus} cpus + 4) = {min(32, cpus + 4)} threads"
            )
            phases = [await measure_idle(heartbeat)]
            phases.append(
                await measure_logins(
                    "worker thread, cold (as shipped)",
                    bench,
                    login_plan(bench, 1),
                    heartbeat,
                    sampler,
                )
            )
            phases.append(
                await measure_logins(
                    "worker thread, warm (as shipped)",
                    bench,
                    login_plan(bench, 2),
                    heartbeat,
                    sampler,
                )
            )
            with bcrypt_on_event_loop():
                phases.append(
                    await measure_logins(
                        "bcrypt on the event loop (contrast)",
                        bench,
                        login_plan(bench, 3),
                        heartbeat,
                        sampler,
                    )
                )
        finally:
            if sampler is not None:
                sampler.stop_event.set()
                sampler.join(timeout=5)
                sys.setswitchinterval(switch_interval)
        if diagnose:
            profiled, totals = await profile_loop_cpu(bench, login_plan(bench, 4), heartbeat)
    print_table(phases, logins)
    print_lag_sources(phases, logins)
    print_kinds(phases)
    if diagnose:
        print_stalls(phases)
        print_loop_cpu(profiled, totals, logins)
    idle, cold, warm, on_loop = phases
    print("\nSummary")
    print(f"  worker thread (as shipped), warm: {summary_line(warm, logins)}")
    print(f"  worker thread (as shipped), cold: {summary_line(cold, logins)}")
    print(f"  bcrypt on the event loop:         {summary_line(on_loop, logins)}")
    print(
        f"  {logins} logins took {warm.wall_s:.2f} s with the worker thread (warm), "
        f"{on_loop.wall_s:.2f} s on the event loop"
    )
    if warm.met and not cold.met:
        print(
            "  the cold run misses the target and the warm one does not: one-time work on "
            "the event loop\n  during the first logins (--diagnose shows where; when this "
            "was written: the dummy bcrypt\n  hash for unknown emails, computed on the loop "
            "by auth/passwords.py's verify_password)"
        )
    return 0 if warm.met else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--logins", type=int, default=DEFAULT_LOGINS, help="concurrent logins (5 to 40)"
    )
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="sample the event loop's stack while the probe is overdue; profile its CPU",
    )
    args = parser.parse_args(argv)
    if not 5 <= args.logins <= 40:
        parser.error("--logins must be between 5 and 40 (bounds the run)")
    return args


async def failing_on_timeout(benchmark: Awaitable[int]) -> int:
    """A measurement that overran PHASE_TIMEOUT_S fails the run like any other failure,
    in one line rather than a traceback of the cancelled logins."""
    try:
        return await benchmark
    except TimeoutError:
        raise BenchmarkError(f"a measurement took over {PHASE_TIMEOUT_S:g} s") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(failing_on_timeout(run(args.logins, args.diagnose)))


if __name__ == "__main__":
    sys.exit(main())
