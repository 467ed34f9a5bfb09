"""What every benchmark here shares: the app running on the embedded defaults, and one
way of reporting a failed run.

Each benchmark gets an app of its own: its own MongoDB child (secantusd-py) and SQLite
billing file in a fresh temporary directory, so it never touches ./data, a running
server or a developer's database, and leaves nothing behind. The settings are built
here rather than read from the environment, so CAREGRAPH_* variables cannot change
what is measured.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

from pymongo import monitoring
from starlette.applications import Starlette

from app import create_app
from runtime.embedded_mongo import EmbeddedMongo
from runtime.services import Services
from settings import Settings


class BenchmarkError(RuntimeError):
    """A failure the benchmark detected itself (a wrong answer, a failed request):
    reported in one line, without a traceback, by run_benchmark."""


@dataclass(frozen=True)
class EmbeddedApp:
    app: Starlette
    # The open services of the app's lifespan (database clients, tokens, ...).
    services: Services
    # The database child, whose CPU time a benchmark may want to read.
    mongo_pid: int


@asynccontextmanager
async def embedded_app(
    *,
    temp_prefix: str,
    database: str,
    mongo_event_listeners: list[monitoring.CommandListener] | None = None,
    **settings: Any,
) -> AsyncIterator[EmbeddedApp]:
    """The app with its lifespan entered, on its own embedded MongoDB and SQLite file.

    `settings` are Settings fields a benchmark sets beyond the embedded defaults.
    Everything is torn down in reverse order even on error or Ctrl-C: the lifespan,
    then the database child, then the temporary directory.
    """
    async with AsyncExitStack() as stack:
        temp_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=temp_prefix)))
        mongo = EmbeddedMongo(temp_dir / "mongodb")
        # Registered before start: a failed start may still leave a child to stop.
        stack.callback(mongo.stop)
        # Started from the main thread, not a pool thread: the child's parent-death
        # signal follows the thread that spawned it (see runtime/services.py).
        uri = mongo.start()
        assert mongo.process is not None
        app = create_app(
            Settings(
                data_dir=temp_dir,
                mongodb_uri=uri,
                mongodb_database=database,
                database_url=f"sqlite+aiosqlite:///{temp_dir / 'billing.sqlite3'}",
                redis_url=None,
                demo_data=False,
                graphiql=False,
                **settings,
            ),
            mongo_event_listeners=mongo_event_listeners,
        )
        await stack.enter_async_context(app.router.lifespan_context(app))
        yield EmbeddedApp(app=app, services=app.state.services, mongo_pid=mongo.process.pid)


def run_benchmark(benchmark: Coroutine[Any, Any, int]) -> int:
    """Run the benchmark; its exit status, or 2 for a BenchmarkError, 130 for Ctrl-C.

    A failure is one line on stderr, not a traceback: the run found a problem with
    what it measures, not with itself.
    """
    try:
        return asyncio.run(benchmark)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Cleanup already ran as asyncio.run cancelled the benchmark.
        print("interrupted", file=sys.stderr)
        return 130


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: a value that was actually observed."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of another process so far; None where /proc is missing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_text() -> str:
    """The machine's load, printed beside results: timings mean little on a busy machine."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load average n/a"
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


@dataclass
class CpuClock:
    """Where a measurement's CPU went: this process (client, app, drivers) and the
    database child, which runs on the other core."""

    app: float
    database: float | None

    @classmethod
    def read(cls, database_pid: int) -> CpuClock:
        return cls(process_time(), process_cpu_seconds(database_pid))

    def since(self, start: CpuClock) -> CpuClock:
        database = None
        if self.database is not None and start.database is not None:
            database = self.database - start.database
        return CpuClock(self.app - start.app, database)


@dataclass
class Throughput:
    requests: int
    seconds: float
    cpu: CpuClock
    # Each request's time under the measurement's concurrency, in milliseconds, sorted.
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def app_cpu_ms(self) -> float:
        return self.cpu.app / self.requests * 1000

    @property
    def database_cpu_ms(self) -> float | None:
        if self.cpu.database is None:
            return None
        return self.cpu.database / self.requests * 1000

    @property
    def median_ms(self) -> float:
        return percentile(self.latencies_ms, 0.5)


async def measure_throughput(
    send: Callable[[], Awaitable[Any]],
    seconds: float,
    database_pid: int,
    *,
    concurrency: int,
    max_requests: int,
    warmup_requests: int = 20,
    warmup_max_seconds: float = 2.0,
    hang_guard_seconds: float = 60.0,
) -> Throughput:
    """`concurrency` workers share a budget of time and of requests; both bound the run.

    A time budget with a high request cap measures for a fixed time; a request count
    with a generous time budget gives every endpoint the same number of requests.
    hang_guard_seconds bounds a request that never returns.
    """
    warmup_deadline = perf_counter() + warmup_max_seconds
    for _ in range(warmup_requests):
        if perf_counter() > warmup_deadline:
            break
        await send()
    issued = 0
    latencies: list[float] = []
    deadline = perf_counter() + seconds

    async def worker() -> None:
        nonlocal issued
        while issued < max_requests and perf_counter() < deadline:
            issued += 1
            request_started = perf_counter()
            await send()
            latencies.append((perf_counter() - request_started) * 1000)

    started, cpu_before = perf_counter(), CpuClock.read(database_pid)
    workers = asyncio.gather(*(worker() for _ in range(concurrency)))
    await asyncio.wait_for(workers, timeout=seconds + hang_guard_seconds)
    elapsed = perf_counter() - started
    latencies.sort()
    return Throughput(issued, elapsed, CpuClock.read(database_pid).since(cpu_before), latencies)
