"""Benchmark of medication safety: the check for a patient with 20 active prescriptions
and 10 conditions (uncached app CPU per check, and cached / uncached), and the pharmacy
queue with alerts (round trips for 5 and 200 entries, latency against the plain
prescription list of the same size).

    .venv/bin/python -m benchmarks.medication_safety [--seconds 3] [--redis URL]

Its own embedded MongoDB and SQLite file (benchmarks/harness.py). The result cache is
the real Redis at --redis (default redis://127.0.0.1:6379/12, flushed first) when it
answers, else the in-process stand-in; the output says which. Every loop is bounded in
count and time. Ratios are printed, not enforced (the tests assert round trips).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from statistics import median
from time import perf_counter, process_time

import httpx
import redis as sync_redis
from bson import ObjectId

from auth.roles import Role
from benchmarks.harness import (
    BenchmarkError,
    EmbeddedApp,
    embedded_app,
    load_text,
    run_benchmark,
)
from datasources.safety import snapshot_from_documents
from knowledge.coding import code_allergy, code_condition, code_drug
from safety import check
from safety.model import CodedDrug, Draft
from tests.support import MongoCommandCounter, issue_token

CONDITIONS = [
    "Hypertension",
    "Type 2 diabetes",
    "Atrial fibrillation",
    "Hyperlipidemia",
    "GERD",
    "Osteoarthritis",
    "Depression",
    "Hypothyroidism",
    "Gout",
    "CKD stage 3",
]
DRUGS = [
    ("Lisinopril", 20),
    ("Amlodipine", 10),
    ("Metformin", 1000),
    ("Apixaban", 5),
    ("Metoprolol", 100),
    ("Atorvastatin", 40),
    ("Omeprazole", 20),
    ("Sertraline", 100),
    ("Levothyroxine", 0.1),
    ("Allopurinol", 300),
    ("Furosemide", 40),
    ("Gabapentin", 300),
    ("Tamsulosin", 0.4),
    ("Donepezil", 10),
    ("Vitamin D3", 1),
    ("Folic acid", 1),
    ("Montelukast", 10),
    ("Cetirizine", 10),
    ("Alendronate", 10),
    ("Paracetamol", 1000),
]
MAX_CHECKS = 2000


def _patient_and_prescriptions(kb) -> tuple[dict, list[dict]]:
    now = datetime.now(UTC)
    patient = {
        "_id": ObjectId(),
        "givenName": "Bench",
        "familyName": "Mark",
        "birthDate": datetime(1950, 1, 1, tzinfo=UTC),
        "sex": "FEMALE",
        "conditions": CONDITIONS,
        "allergies": ["Penicillin", "Latex"],
        "codedConditions": [code_condition(c, kb) for c in CONDITIONS],
        "codedAllergies": [code_allergy(a, kb) for a in ["Penicillin", "Latex"]],
        "clinicalVersion": str(ObjectId()),
        "createdAt": now,
        "updatedAt": now,
    }
    prescriptions = [
        {
            "_id": ObjectId(),
            "patientId": patient["_id"],
            "doctorId": ObjectId(),
            "drug": name,
            "drugCode": code_drug(name, kb),
            "dosage": {"value": float(dose), "unit": "MG"},
            "frequency": "ONCE_DAILY",
            "startDate": now - timedelta(days=30),
            "endDate": now + timedelta(days=60),
            "costCents": 500,
            "status": "ACTIVE",
            "verification": {"status": "DISPENSED"},
            "createdAt": now,
            "updatedAt": now,
        }
        for name, dose in DRUGS
    ]
    return patient, prescriptions


def _draft(kb, dose: float) -> Draft:
    drug = kb.find_drug("Clarithromycin")
    coded = CodedDrug(text="Clarithromycin", rxcui=drug.rxcui, atc=drug.atc, display=drug.name)
    today = datetime.now(UTC).date()
    return Draft(
        drug=coded,
        start=today,
        end=today + timedelta(days=7),
        dose_value=dose,
        dose_unit="MG",
        frequency="TWICE_DAILY",
    )


async def _check_latency(env: EmbeddedApp, seconds: float) -> None:
    services = env.services
    kb = services.knowledge
    patient, prescriptions = _patient_and_prescriptions(kb)
    await services.db["patients"].insert_one(patient)
    await services.db["prescriptions"].insert_many(prescriptions)
    snapshot = snapshot_from_documents(patient, prescriptions, datetime.now(UTC).date())
    if len(snapshot.medications) != 20 or len(snapshot.conditions) != 10:
        raise BenchmarkError("the benchmark patient is not 20 prescriptions and 10 conditions")

    # The pure check alone.
    draft = _draft(kb, 500)
    alerts = check(snapshot, draft, kb)
    if not alerts:
        raise BenchmarkError("the benchmark draft raised no alert")
    pure: list[float] = []
    deadline = perf_counter() + seconds
    while len(pure) < MAX_CHECKS and perf_counter() < deadline:
        started = process_time()
        check(snapshot, draft, kb)
        pure.append(process_time() - started)

    safety = services.safety()

    async def through_service(dose: float) -> tuple[float, float]:
        cpu, wall = process_time(), perf_counter()
        result = await safety.check_one(patient["_id"], _draft(kb, dose))
        if result is None:
            raise BenchmarkError("the patient vanished")
        return process_time() - cpu, perf_counter() - wall

    # Uncached: every draft differs (its dose), so every check misses and is stored.
    misses_before = safety.counters.misses
    uncached: list[tuple[float, float]] = []
    deadline = perf_counter() + seconds
    while len(uncached) < MAX_CHECKS // 4 and perf_counter() < deadline:
        uncached.append(await through_service(100 + len(uncached) * 0.001))
    if safety.counters.misses - misses_before != len(uncached):
        raise BenchmarkError("an uncached check was served from the cache")
    # Cached: the same draft again and again.
    await through_service(500)
    hits_before = safety.counters.hits
    cached: list[tuple[float, float]] = []
    deadline = perf_counter() + seconds
    while len(cached) < MAX_CHECKS and perf_counter() < deadline:
        cached.append(await through_service(500))
    if safety.counters.hits - hits_before != len(cached):
        raise BenchmarkError("a cached check was recomputed")

    pure_ms = median(pure) * 1000
    uncached_cpu = median(c for c, _ in uncached) * 1000
    cached_cpu = median(c for c, _ in cached) * 1000
    uncached_wall = median(w for _, w in uncached) * 1000
    cached_wall = median(w for _, w in cached) * 1000
    print(f"patient: 20 active prescriptions, 10 conditions; draft raises {len(alerts)} alerts")
    print(f"  pure check (safety.check), app CPU per check: {pure_ms:.3f} ms  (n={len(pure)})")
    print(
        f"  uncached check (patient + prescriptions read, check, cache write): "
        f"app CPU {uncached_cpu:.3f} ms, wall {uncached_wall:.3f} ms  (n={len(uncached)})"
    )
    print(
        f"  cached check (patient version read, cache read): "
        f"app CPU {cached_cpu:.3f} ms, wall {cached_wall:.3f} ms  (n={len(cached)})"
    )
    print(
        f"  cached / uncached: app CPU {cached_cpu / uncached_cpu:.3f}, "
        f"wall {cached_wall / uncached_wall:.3f}  (target <= 0.05)"
    )
    print(f"  cached / pure check CPU: {cached_cpu / pure_ms:.3f}")


QUEUE = """query($n: Int!) { pharmacyQueue(first: $n) {
  nodes { id drug createdAt patient { name } alerts { severity kind summary } } } }"""
PLAIN = """query($n: Int!) { prescriptions(first: $n) {
  nodes { id drug createdAt patient { name } } } }"""


async def _queue(env: EmbeddedApp, counter: MongoCommandCounter, seconds: float) -> None:
    from demo.generator import load_demo_data

    services = env.services
    await load_demo_data(services, seed=7, size="default", progress=False)
    # Enough prescriptions awaiting review for a page of 200 (demo data has a few dozen).
    await services.db["prescriptions"].update_many(
        {}, {"$set": {"verification": {"status": "PENDING_REVIEW"}, "safety.rank": 0}}
    )
    token = await issue_token(services, Role.PHARMACIST)
    transport = httpx.ASGITransport(app=env.app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", headers={"Authorization": f"Bearer {token}"}
    ) as http:

        async def run(query: str, n: int) -> float:
            started = perf_counter()
            response = await http.post("/graphql", json={"query": query, "variables": {"n": n}})
            elapsed = perf_counter() - started
            body = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise BenchmarkError(f"request failed: {response.status_code} {body}")
            nodes = next(iter(body["data"].values()))["nodes"]
            if len(nodes) != n:
                raise BenchmarkError(f"expected {n} nodes, got {len(nodes)}")
            return elapsed

        trips: dict[int, int] = {}
        for n in (5, 200):
            counter.reset()
            await run(QUEUE, n)
            trips[n] = len(counter.commands)
        counter.reset()
        cold = await run(QUEUE, 200)  # already cached by the round-trip run above
        print(
            f"pharmacyQueue round trips: first 5 -> {trips[5]}, first 200 -> {trips[200]} "
            f"(target: equal); collections {counter.collections}"
        )
        # Alternate the two lists, bounded in rounds and time.
        queue_times: list[float] = []
        plain_times: list[float] = []
        deadline = perf_counter() + seconds * 2
        while len(queue_times) < 60 and perf_counter() < deadline:
            queue_times.append(await run(QUEUE, 200))
            plain_times.append(await run(PLAIN, 200))
        queue_ms, plain_ms = median(queue_times) * 1000, median(plain_times) * 1000
        print(
            f"pharmacyQueue(first: 200) with alerts (cached): {queue_ms:.1f} ms median; "
            f"prescriptions(first: 200): {plain_ms:.1f} ms; ratio {queue_ms / plain_ms:.2f} "
            f"(target <= 1.5; n={len(queue_times)}; one warm request {cold * 1000:.1f} ms)"
        )
        # Cold: every alert computed (a new knowledge of history: bump all versions).
        await services.db["patients"].update_many(
            {}, {"$set": {"clinicalVersion": str(ObjectId())}}
        )
        cold_ms = await run(QUEUE, 200) * 1000
        print(
            f"pharmacyQueue(first: 200) with every alert computed (cache cold): {cold_ms:.1f} ms"
            f" = {cold_ms / plain_ms:.2f}x the plain list"
        )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args(argv)
    redis_url = None
    try:
        client = sync_redis.Redis.from_url(args.redis, socket_connect_timeout=1)
        client.ping()
        client.flushdb()
        client.close()
        redis_url = args.redis
    except (OSError, sync_redis.RedisError):
        pass
    print(
        f"medication safety benchmark; cache: {redis_url or 'in-process Redis stand-in'}; "
        f"{load_text()}"
    )
    counter = MongoCommandCounter()
    async with embedded_app(
        temp_prefix="caregraph-safety-bench-",
        database="bench_safety",
        mongo_event_listeners=[counter],
    ) as env:
        if redis_url is not None:
            # The harness pins the stand-in; the cache is what is measured here.
            import redis.asyncio as async_redis

            env.services.redis = async_redis.from_url(redis_url)
        await _check_latency(env, args.seconds)
        await _queue(env, counter, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(run_benchmark(main()))
