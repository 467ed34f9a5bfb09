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
from collections.abc import AsyncIterator, Coroutine
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
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
