"""Peers: the same slice of schema served by other Python GraphQL stacks, in one run.

The slice is the reference query's: appointments with patient, doctor and bill (and
totalCount). Ariadne and Graphene 3 resolve it through CareGraph's own datasources and
per-request dataloaders and authenticate as auth/authenticate.py does, so what differs
is the GraphQL layer. Each stack is a uvicorn process of its own on loopback
(benchmarks/peer_server.py), started one at a time on the same embedded MongoDB and
SQLite file, and loaded by 16 concurrent clients from the benchmark process.

- Ariadne: `pip install -e .[bench]`.
- Graphene 3 needs an interpreter of its own: graphene 3.4.3 (the newest release)
  requires graphql-core < 3.3 and strawberry-graphql requires >= 3.3. Make one with
  `python -m venv V && V/bin/pip install graphene starlette uvicorn` plus the app's
  other dependencies (pyproject.toml, all but strawberry-graphql), and pass
  `--graphene-python V/bin/python`; without it Graphene is reported as not measured.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from time import perf_counter

import httpx

from benchmarks.harness import BenchmarkError, load_text, measure_throughput
from runtime.services import Services

SLICE_QUERY = """query Slice($n: Int!) { appointments(first: $n) { totalCount
  nodes { start patient { name } doctor { name } bill { totalCost } } } }"""
SLICE_PAGE_SIZE = 20
CONCURRENCY = 16
MAX_REQUESTS = 5_000
START_TIMEOUT_S = 90.0
TARGET = 1.5
REPOSITORY = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _wait_until_serving(port: int, process: asyncio.subprocess.Process) -> None:
    deadline = perf_counter() + START_TIMEOUT_S
    while perf_counter() < deadline:
        if process.returncode is not None:
            raise BenchmarkError(f"peer server exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise BenchmarkError("peer server did not start in time")


async def _measure(
    stack: str, python: str, services: Services, token: str, seconds: float, mongo_pid: int
) -> float:
    settings = services.settings
    port = _free_port()
    command = [
        python, "-m", "benchmarks.peer_server", "--stack", stack, "--port", str(port),
        "--data-dir", str(settings.data_dir), "--mongodb-uri", str(settings.mongodb_uri),
        "--database", settings.mongodb_database, "--billing-url", str(settings.database_url),
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    process = await asyncio.create_subprocess_exec(*command, cwd=REPOSITORY, env=environment)
    try:
        await _wait_until_serving(port, process)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            trust_env=False,
            timeout=60.0,
            limits=httpx.Limits(max_connections=CONCURRENCY),
        ) as http:
            body = {"query": SLICE_QUERY, "variables": {"n": SLICE_PAGE_SIZE}}

            async def send() -> bytes:
                response = await http.post("/graphql", json=body)
                if response.status_code != 200 or b'"errors"' in response.content:
                    raise BenchmarkError(f"{stack}: {response.text[:300]}")
                if b'"totalCost"' not in response.content:
                    raise BenchmarkError(f"{stack} answered without bills")
                return response.content

            rate = await measure_throughput(
                send, seconds, mongo_pid, concurrency=CONCURRENCY, max_requests=MAX_REQUESTS
            )
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout=15)
            except TimeoutError:
                process.kill()
                await process.wait()
    print(
        f"   {stack:<10} {rate.per_second:7.1f} req/s, median {rate.median_ms:7.1f} ms "
        f"({load_text()})"
    )
    return rate.per_second


async def compare_peers(
    services: Services,
    token: str,
    seconds: float,
    mongo_pid: int,
    graphene_python: str | None,
) -> float | None:
    """CareGraph's throughput on the slice over the fastest peer's (printed)."""
    print(
        f"\n4. peers: the same schema slice, N={SLICE_PAGE_SIZE}, {CONCURRENCY} clients, "
        "each stack its own uvicorn process on loopback"
    )
    stacks = [("caregraph", sys.executable), ("ariadne", sys.executable)]
    if graphene_python:
        stacks.append(("graphene", graphene_python))
    rates = {
        stack: await _measure(stack, python, services, token, seconds, mongo_pid)
        for stack, python in stacks
    }
    if not graphene_python:
        print("   graphene   not measured: pass --graphene-python (see benchmarks/peers.py)")
    peers = {stack: rate for stack, rate in rates.items() if stack != "caregraph"}
    fastest = max(peers, key=lambda stack: peers[stack])
    ratio = rates["caregraph"] / peers[fastest]
    verdict = "meets target" if ratio >= TARGET else "MISSES target"
    print(f"   CareGraph / {fastest} = {ratio:.2f}x (target {TARGET:g}x: {verdict})")
    return ratio
