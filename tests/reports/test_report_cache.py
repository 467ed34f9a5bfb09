"""The Redis result cache for reports, on the in-process stand-in and on real Redis:
hits, separate entries per arguments and disclosure level, read-after-write after every
kind of write, expiry, and single-flight in one process and across processes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from datasources.redis.client import create_redis
from datasources.redis.report_cache import CacheOutcome, ReportCache
from tests.factories import iso
from tests.reports.support import (
    BOTH_REDIS,
    CANCEL,
    DELETE_BILL,
    QUERIES,
    RARE,
    STATS,
    UPDATE_APPOINTMENT,
    UPDATE_BILL,
    UPDATE_DOCTOR,
    UPDATE_PRESCRIPTION,
    WATCHED,
    Edges,
    K,
    ask,
    book_at,
    complete,
    create_bill,
    expected,
    prescribe,
    stored,
    utc,
)
from tests.support import GraphQLClient

# -- 3 and 4. the cache, on the stand-in and on real Redis ----------------------------------


@BOTH_REDIS
async def test_second_identical_request_is_a_hit(client, services, data_set, redis_backend):
    for report, variables in WATCHED.items():
        first = await ask(client, report, variables)
        second = await ask(client, report, variables)
        assert first.cache == [{"report": report, "hit": False}]
        assert second.cache == [{"report": report, "hit": True}]
        assert second.report == first.report
        assert second.report == expected(report, await stored(services), variables)


@BOTH_REDIS
async def test_arguments_and_disclosure_level_are_separate_entries(
    client, analyst, data_set, redis_backend
):
    durations = "diseaseTreatmentDurations"
    period = WATCHED[durations]
    full = await ask(client, durations, period)
    assert not full.hit
    assert (await ask(client, durations, {"before": iso(utc(2026, 5, 1))})).hit is False
    assert (await ask(client, durations, {**period, "from": iso(utc(2025, 1, 1))})).hit is False
    # An analyst after an admin: never the admin's cached result.
    seen = await ask(analyst, durations, period)
    assert not seen.hit
    assert seen.report["privacy"]["minimumGroupSize"] == K
    assert RARE not in {row["disease"] for row in seen.report["rows"]}
    assert len(seen.report["rows"]) < len(full.report["rows"])
    again = await ask(analyst, durations, period)
    assert again.hit and again.report == seen.report
    admin_again = await ask(client, durations, period)
    assert admin_again.hit and admin_again.report == full.report

    assert (await ask(client, "topDoctors", {"limit": 100})).hit is False
    assert (await ask(client, "topDoctors", {"limit": 5})).hit is False
    assert (await ask(client, "topDoctors", {"limit": 5})).hit is True
    assert (await ask(client, "monthlyAppointmentTrend", {"year": 2025})).hit is False
    assert (await ask(client, "monthlyAppointmentTrend", {"year": 2026})).hit is False


@BOTH_REDIS
async def test_analyst_first_then_admin_gets_everything(client, analyst, data_set, redis_backend):
    seen = await ask(analyst, "averagePrescriptionCostByDisease")
    full = await ask(client, "averagePrescriptionCostByDisease")
    assert not full.hit
    assert full.report["privacy"]["minimumGroupSize"] is None
    assert RARE in {row["disease"] for row in full.report["rows"]}
    assert RARE not in {row["disease"] for row in seen.report["rows"]}


async def _book_other_patient(client, services, edges: Edges) -> None:
    await book_at(client, services, edges.other_patient, edges.doctor)


async def _cancel_upcoming(client, services, edges: Edges) -> None:
    await client.data(CANCEL, {"id": edges.upcoming})


async def _complete_overdue(client, services, edges: Edges) -> None:
    await complete(client, edges.overdue, RARE)


async def _diagnose_plain_visit(client, services, edges: Edges) -> None:
    diagnosis = {"diagnosis": "Common cold"}
    await client.data(UPDATE_APPOINTMENT, {"id": edges.plain_visit, "input": diagnosis})


async def _prescribe_other_patient(client, services, edges: Edges) -> None:
    await prescribe(
        client,
        edges.other_patient,
        edges.doctor,
        indication=RARE,
        start="2026-03-01",
        end="2026-03-31",
        cost="40.00",
    )


async def _change_prescription_cost(client, services, edges: Edges) -> None:
    await client.data(UPDATE_PRESCRIPTION, {"id": edges.open_rx, "input": {"cost": "99.99"}})


async def _bill_plain_visit(client, services, edges: Edges) -> None:
    await create_bill(
        client, edges.patient, disease=RARE, total="120.00", appointment_id=edges.plain_visit
    )


async def _change_bill_total(client, services, edges: Edges) -> None:
    await client.data(UPDATE_BILL, {"id": edges.bill, "input": {"totalCost": "300.00"}})


async def _delete_bill(client, services, edges: Edges) -> None:
    await client.data(DELETE_BILL, {"id": edges.bill})


async def _rename_doctor(client, services, edges: Edges) -> None:
    await client.data(UPDATE_DOCTOR, {"id": edges.doctor["id"], "input": {"givenName": "Erica"}})


Write = Callable[[GraphQLClient, Any, Edges], Awaitable[None]]
WRITES: dict[str, tuple[Write, str]] = {
    "createAppointment": (_book_other_patient, "topDoctors"),
    "cancelAppointment": (_cancel_upcoming, "topDoctors"),
    "completeAppointment": (_complete_overdue, "diseaseTreatmentDurations"),
    "completeAppointment (monthly)": (_complete_overdue, "monthlyAppointmentTrend"),
    "updateAppointment diagnosis": (_diagnose_plain_visit, "diseaseTreatmentDurations"),
    "createPrescription": (_prescribe_other_patient, "averagePrescriptionCostByDisease"),
    "updatePrescription": (_change_prescription_cost, "averagePrescriptionCostByDisease"),
    "createBill": (_bill_plain_visit, "averagePrescriptionCostByDisease"),
    "updateBill": (_change_bill_total, "averagePrescriptionCostByDisease"),
    "deleteBill": (_delete_bill, "averagePrescriptionCostByDisease"),
    "updateDoctor name": (_rename_doctor, "topDoctors"),
}


@BOTH_REDIS
@pytest.mark.parametrize("write", WRITES)
async def test_a_write_makes_the_next_read_miss_and_see_it(
    client, services, edges, redis_backend, write
):
    change, report = WRITES[write]
    variables = WATCHED[report]
    before = await ask(client, report, variables)
    assert (await ask(client, report, variables)).hit
    await change(client, services, edges)
    after = await ask(client, report, variables)
    assert not after.hit, f"{report} served from the cache after {write}"
    assert after.report != before.report, f"{write} should change {report}"
    assert after.report == expected(report, await stored(services), variables)


@BOTH_REDIS
async def test_stats_count_hits_and_misses(client, demo, redis_backend):
    async def stats() -> dict:
        return (await client.data(STATS))["reportCacheStats"]

    start = await stats()
    await ask(client, "topDoctors")  # miss
    await ask(client, "topDoctors")  # hit
    await ask(client, "topDoctors", {"limit": 3})  # miss
    await ask(client, "topDoctors")  # hit
    await ask(client, "monthlyAppointmentTrend", {"year": 2026})  # miss
    end = await stats()
    assert end["hits"] - start["hits"] == 2
    assert end["misses"] - start["misses"] == 3
    assert end["errors"] == 0


@BOTH_REDIS
async def test_concurrent_identical_requests_compute_once(
    client, services, demo, monkeypatch, redis_backend
):
    calls = 0
    original = services.reports.doctor_activity

    async def slow_doctor_activity(**arguments):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)  # long enough for all twenty to overlap
        return await original(**arguments)

    monkeypatch.setattr(services.reports, "doctor_activity", slow_doctor_activity)
    answers = await asyncio.gather(*(ask(client, "topDoctors") for _ in range(20)))
    assert calls == 1
    assert all(answer.report == answers[0].report for answer in answers)
    assert answers[0].report == expected("topDoctors", await stored(services), {})


@BOTH_REDIS
async def test_a_failed_computation_leaves_nothing_behind(
    client, services, demo, monkeypatch, redis_backend
):
    """Everyone waiting on a computation that fails gets an error, at once; the next
    request computes afresh (no stuck in-flight entry, no leftover Redis lock)."""
    original = services.reports.doctor_activity
    failures = 0

    async def failing_doctor_activity(**arguments):
        nonlocal failures
        failures += 1
        await asyncio.sleep(0.1)
        raise RuntimeError("the aggregation failed")

    monkeypatch.setattr(services.reports, "doctor_activity", failing_doctor_activity)
    bodies = await asyncio.gather(*(client.post(QUERIES["topDoctors"]) for _ in range(5)))
    assert failures == 1
    for body in bodies:
        assert [e["extensions"]["code"] for e in body["errors"]] == ["INTERNAL_SERVER_ERROR"]

    monkeypatch.setattr(services.reports, "doctor_activity", original)
    started = asyncio.get_running_loop().time()
    answer = await ask(client, "topDoctors")
    assert asyncio.get_running_loop().time() - started < 2, "waited on a stale lock"
    assert not answer.hit
    assert answer.report == expected("topDoctors", await stored(services), {})


@BOTH_REDIS
async def test_cached_results_expire(client, services, demo, redis_backend):
    """Entries of old generations are never read again: they must not live forever."""
    for report, variables in WATCHED.items():
        await ask(client, report, variables)
    store = services.report_cache.client
    entries = [
        key
        for key in await store.keys("report:*")
        if key not in (b"report:generation", b"report:stats")
    ]
    assert len(entries) == len(WATCHED)
    for key in entries:
        assert 0 < await store.ttl(key) <= services.settings.report_cache_ttl_s, key


async def test_two_processes_sharing_redis_compute_once(services, demo, redis_url):
    """Two ReportCache instances with their own connections, like two server processes."""
    calls = 0

    async def compute():
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        rows = await services.reports.doctor_activity(starts_from=None, before=None)
        return {"doctors": [str(row["_id"]) for row in rows], "call": calls}

    clients = [create_redis(redis_url), create_redis(redis_url)]
    try:
        await clients[0].flushdb()
        caches = [ReportCache(c, ttl_s=60) for c in clients]
        results = await asyncio.gather(
            *(
                cache.fetch(
                    report="topDoctors", arguments={"limit": 10}, scope="full", compute=compute
                )
                for cache in caches
                for _ in range(10)
            )
        )
    finally:
        for c in clients:
            await c.aclose()
    assert calls == 1
    values = [value for value, _ in results]
    assert all(value == values[0] for value in values)
    assert values[0]["call"] == 1 and len(values[0]["doctors"]) == 6


async def test_a_failed_invalidation_never_serves_a_stale_result(
    client, services, edges, monkeypatch, caplog
):
    """Redis refuses the generation bump after a write: cached results from before the
    write must not be served, neither right away nor once Redis answers again."""
    costs = "averagePrescriptionCostByDisease"
    before = await ask(client, costs)
    assert (await ask(client, costs)).hit

    async def refuse(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Redis went away")

    with monkeypatch.context() as patch:
        patch.setattr(services.report_cache.client, "incr", refuse)
        await _change_bill_total(client, services, edges)
    assert any(
        r.levelno >= logging.ERROR and "invalidate" in r.getMessage() for r in caplog.records
    )
    for _ in range(2):
        after = await ask(client, costs)
        assert not after.hit
        assert after.report != before.report
        assert after.report == expected(costs, await stored(services), {})


async def test_a_write_in_one_process_invalidates_the_others(redis_url):
    """Process A caches a result; process B's write moves the shared generation on."""
    clients = [create_redis(redis_url), create_redis(redis_url)]
    try:
        await clients[0].flushdb()
        a, b = (ReportCache(c, ttl_s=60) for c in clients)
        version = 1

        async def compute():
            return {"version": version}

        def fetch(cache):
            return cache.fetch(report="topDoctors", arguments={}, scope="full", compute=compute)

        assert await fetch(a) == ({"version": 1}, CacheOutcome("topDoctors", False))
        assert await fetch(b) == ({"version": 1}, CacheOutcome("topDoctors", True))
        version = 2
        await b.invalidate()
        assert await fetch(a) == ({"version": 2}, CacheOutcome("topDoctors", False))
        assert await fetch(b) == ({"version": 2}, CacheOutcome("topDoctors", True))
    finally:
        for c in clients:
            await c.aclose()
