"""Reports with Redis down: answers stay correct, failures are logged and counted, and
writes and reads go on.
"""

from __future__ import annotations

import logging

import pytest

from tests.reports.support import (
    QUERIES,
    STATS,
    WATCHED,
    Answer,
    K,
    ask,
    create_bill,
    expected,
    stored,
)

# -- 4. Redis down -------------------------------------------------------------------------


@pytest.mark.parametrize("redis_backend", ["down"])
async def test_reports_answer_correctly_while_redis_is_down(
    client, analyst, services, data_set, redis_backend
):
    for report, variables in WATCHED.items():
        for who, k in ((client, None), (analyst, K)):
            body = await who.post(QUERIES[report], variables)
            assert "errors" not in body, body["errors"]
            answer = Answer(body)
            assert answer.report == expected(report, await stored(services), variables, k=k)
            (outcome,) = answer.cache
            assert outcome["hit"] is False and outcome.get("bypassed"), outcome


@pytest.mark.parametrize("redis_backend", ["down"])
async def test_redis_failure_on_read_is_logged_and_counted(client, services, caplog, redis_backend):
    """No write has failed yet: each read tries Redis, logs the failure and computes."""
    caplog.set_level(logging.WARNING)
    for report, variables in WATCHED.items():
        answer = await ask(client, report, variables)
        assert answer.report == expected(report, await stored(services), variables)
        assert answer.cache == [{"report": report, "hit": False, "bypassed": "redis unavailable"}]
    warnings = [
        r
        for r in caplog.records
        if r.name == "datasources.report_cache" and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == len(WATCHED), [r.getMessage() for r in caplog.records]
    stats = (await client.data(STATS))["reportCacheStats"]
    assert stats == {"hits": 0, "misses": 0, "errors": len(WATCHED)}


@pytest.mark.parametrize("redis_backend", ["down"])
async def test_writes_and_reads_go_on_while_redis_is_down(
    client, services, demo, caplog, redis_backend
):
    caplog.set_level(logging.WARNING)
    costs = "averagePrescriptionCostByDisease"
    before = await ask(client, costs)
    patient = {"id": (await stored(services)).patient_ids[0]}
    await create_bill(client, patient, disease="Asthma", total="9999.00")
    after = await ask(client, costs)
    assert after.report != before.report
    assert after.report == expected(costs, await stored(services), {})
    assert after.cache[0]["hit"] is False and after.cache[0].get("bypassed")
    assert any(
        record.levelno >= logging.ERROR and "invalidate" in record.getMessage()
        for record in caplog.records
    ), [record.getMessage() for record in caplog.records]
