"""Benchmark of `caregraph backup`: throughput and peak memory at two data sizes.

    .venv/bin/python -m benchmarks.backup_throughput [--sizes default large]

Per size: its own embedded MongoDB and SQLite file (benchmarks/harness.py), the demo
data at that size (seed 42), then one archive created (every collection and table,
encrypted and authenticated, to a file in the temporary directory) and verified.
Printed per size: documents + rows, seconds and documents per second for create and
verify, the archive's size, and the peak of memory this process allocated during each
step (tracemalloc: Python allocations, reset before each step, so earlier work does not
count). The target: peak memory flat, the largest size's peak within 1.2x the first's,
whatever the data grows by. Exit status 0 when it is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from backup.create import create_backup
from backup.stores import backup_client, services_uri
from backup.verify import verify_archive
from benchmarks.harness import embedded_app, load_text, run_benchmark
from demo.generator import load_demo_data

KEY = bytes(range(32))
TARGET_RATIO = 1.2


@dataclass
class Run:
    size: str
    records: int
    create_s: float
    verify_s: float
    archive_bytes: int
    create_peak: int
    verify_peak: int


async def measure(size: str) -> Run:
    async with embedded_app(temp_prefix="cg-backup-bench-", database="bench") as running:
        services = running.services
        started = time.perf_counter()
        await load_demo_data(services, seed=42, size=size, progress=False)
        print(f"  {size}: demo data loaded in {time.perf_counter() - started:.1f} s", flush=True)
        archive = Path(services.settings.data_dir) / f"{size}.cgbk"
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            started = time.perf_counter()
            client = backup_client(services_uri(services))
            with open(archive, "wb") as out:  # noqa: ASYNC230 - what is being measured
                db = client[services.settings.mongodb_database]
                manifest = await create_backup(db, services.engine, out, KEY)
            await client.close()
            create_s = time.perf_counter() - started
            create_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            started = time.perf_counter()
            verify_archive(archive, KEY)
            verify_s = time.perf_counter() - started
            verify_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        records = sum(c["count"] for c in manifest["mongodb"]["collections"].values()) + sum(
            t["count"] for t in manifest["sql"]["tables"].values()
        )
        return Run(
            size, records, create_s, verify_s, archive.stat().st_size, create_peak, verify_peak
        )


async def main(sizes: list[str]) -> int:
    print(f"backup benchmark ({load_text()})", flush=True)
    runs = [await measure(size) for size in sizes]
    print(
        f"\n{'size':<8}{'records':>9}{'create s':>10}{'docs/s':>9}{'verify s':>10}"
        f"{'docs/s':>9}{'archive MB':>12}{'peak create MB':>16}{'peak verify MB':>16}"
    )
    for run in runs:
        print(
            f"{run.size:<8}{run.records:>9}{run.create_s:>10.2f}"
            f"{run.records / run.create_s:>9.0f}{run.verify_s:>10.2f}"
            f"{run.records / run.verify_s:>9.0f}{run.archive_bytes / 1e6:>12.1f}"
            f"{run.create_peak / 1e6:>16.2f}{run.verify_peak / 1e6:>16.2f}"
        )
    first, last = runs[0], runs[-1]
    data_ratio = last.records / first.records
    create_ratio = last.create_peak / first.create_peak
    verify_ratio = last.verify_peak / first.verify_peak
    print(
        f"\ndata x{data_ratio:.1f}: peak memory x{create_ratio:.2f} (create), "
        f"x{verify_ratio:.2f} (verify); target <= x{TARGET_RATIO}"
    )
    return 0 if max(create_ratio, verify_ratio) <= TARGET_RATIO else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["default", "large"])
    sys.exit(run_benchmark(main(parser.parse_args().sizes)))
