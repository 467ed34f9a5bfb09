"""What the PHI safeguards cost: the reference nested query and a patient chart, with
the audit trail (and bulk-export guard) on vs off, and with field encryption on vs off,
measured in one run against one database, requests interleaved so both sides see the
same machine load. Prints ratios (on / off); the audit target is <= 1.15x.

    .venv/bin/python -m benchmarks.phi_overhead [--rounds 15] [--requests 6]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from time import perf_counter

import httpx
import orjson

from app import create_app
from auth.roles import Role
from benchmarks.harness import BenchmarkError, embedded_app, load_text, run_benchmark
from benchmarks.nested_query import REFERENCE_QUERY
from datasources.key_management import encrypt_existing
from demo.generator import load_demo_data
from tests.support import issue_token

AUDIT_TARGET = 1.15
MAX_SECONDS = 420.0  # the whole measurement, whatever the machine
CHART = (Path(__file__).parent.parent / "queries" / "PatientChart.graphql").read_text()


def _sender(http: httpx.AsyncClient, body: dict) -> Callable[[], Awaitable[None]]:
    payload = orjson.dumps(body)

    async def send() -> None:
        response = await http.post(
            "/graphql", content=payload, headers={"content-type": "application/json"}
        )
        if response.status_code != 200 or b'"errors"' in response.content:
            raise BenchmarkError(f"request failed: {response.status_code} {response.text[:200]}")

    return send


async def _median_ms(send: Callable[[], Awaitable[None]], requests: int) -> float:
    times = []
    for _ in range(requests):
        started = perf_counter()
        await send()
        times.append((perf_counter() - started) * 1000)
    return statistics.median(times)


async def _compare(
    label: str,
    on: Callable[[], Awaitable[None]],
    off: Callable[[], Awaitable[None]],
    rounds: int,
    requests: int,
    deadline: float,
) -> float:
    for send in (on, off):  # warm caches, loaders, parsers
        for _ in range(3):
            await send()
    ratios, on_ms, off_ms = [], [], []
    for round_number in range(rounds):
        if perf_counter() > deadline:
            break
        pair = (on, off) if round_number % 2 == 0 else (off, on)
        first = await _median_ms(pair[0], requests)
        second = await _median_ms(pair[1], requests)
        a, b = (first, second) if pair[0] is on else (second, first)
        on_ms.append(a)
        off_ms.append(b)
        ratios.append(a / b)
    ratio = statistics.median(ratios)
    print(
        f"{label:<52} on {statistics.median(on_ms):7.1f} ms  off "
        f"{statistics.median(off_ms):7.1f} ms  ratio {ratio:.3f}x  ({len(ratios)} rounds)"
    )
    return ratio


async def main(rounds: int, requests: int) -> int:
    deadline = perf_counter() + MAX_SECONDS
    async with AsyncExitStack() as stack:
        embedded = await stack.enter_async_context(
            embedded_app(temp_prefix="caregraph-phi-bench-", database="caregraph_phi_bench")
        )
        services = embedded.services
        print("loading demo data (size=default) ...", flush=True)
        await load_demo_data(services, seed=42, size="default", progress=False)
        audit_off = create_app(services.settings.with_overrides(audit_enabled=False))
        await stack.enter_async_context(audit_off.router.lifespan_context(audit_off))
        token = await issue_token(services, Role.ADMIN)
        headers = {"authorization": f"Bearer {token}"}
        clients = {}
        for name, app in (("on", embedded.app), ("off", audit_off)):
            transport = httpx.ASGITransport(app=app)
            clients[name] = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://bench", headers=headers)
            )
        patient = await services.db["patients"].find_one({}, sort=[("nameKey", 1), ("_id", 1)])
        if patient is None:
            raise BenchmarkError("the demo data has no patient")
        reference = {"query": REFERENCE_QUERY, "variables": {"n": 500}}
        chart = {"query": CHART, "variables": {"id": str(patient["_id"])}}
        print(load_text())
        audit_reference = await _compare(
            "audit on/off, reference query (first: 500)",
            _sender(clients["on"], reference),
            _sender(clients["off"], reference),
            rounds,
            requests,
            deadline,
        )
        await _compare(
            "audit on/off, patient chart (PatientChart)",
            _sender(clients["on"], chart),
            _sender(clients["off"], chart),
            rounds,
            requests,
            deadline,
        )
        # Encryption: the same demo data in a second database, stored in plaintext and
        # served by an app with field encryption off (both with auditing on).
        encrypted = await encrypt_existing(services)
        print(f"encrypted {encrypted} documents of the demo data")
        plain_app = create_app(
            services.settings.with_overrides(
                field_encryption=False,
                mongodb_database="caregraph_phi_bench_plain",
                # Its own billing file too: the demo bills would clash with the first's.
                database_url="sqlite+aiosqlite:///"
                + str(services.settings.data_dir / "billing-plain.sqlite3"),
            )
        )
        await stack.enter_async_context(plain_app.router.lifespan_context(plain_app))
        await load_demo_data(plain_app.state.services, seed=42, size="default", progress=False)
        plain_token = await issue_token(plain_app.state.services, Role.ADMIN)
        plain_http = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=plain_app),
                base_url="http://bench",
                headers={"authorization": f"Bearer {plain_token}"},
            )
        )
        await _compare(
            "encryption on/off, reference query (first: 500)",
            _sender(clients["on"], reference),
            _sender(plain_http, reference),
            rounds,
            requests,
            deadline,
        )
        twin = await plain_app.state.services.db["patients"].find_one(
            {"nameKey": patient["nameKey"], "birthDate": patient["birthDate"]}
        )
        if twin is None:
            raise BenchmarkError("the plaintext database has no twin of the chart's patient")
        plain_chart = {"query": CHART, "variables": {"id": str(twin["_id"])}}
        await _compare(
            "encryption on/off, patient chart (PatientChart)",
            _sender(clients["on"], chart),
            _sender(plain_http, plain_chart),
            rounds,
            requests,
            deadline,
        )
        records = await services.db["audit_log"].count_documents({})
        print(f"audit records written during the run: {records}")
        if services.audit_log is None:
            raise BenchmarkError("the audit log is not open (auditing off?)")
        verdict = await services.audit_log.verify()
        print(f"chain after the run: {'intact' if verdict.ok else verdict.problem}")
    status = "meets" if audit_reference <= AUDIT_TARGET else "MISSES"
    print(f"audit overhead {audit_reference:.3f}x {status} the {AUDIT_TARGET}x target")
    return 0 if audit_reference <= AUDIT_TARGET else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=6)
    arguments = parser.parse_args()
    raise SystemExit(run_benchmark(main(arguments.rounds, arguments.requests)))
