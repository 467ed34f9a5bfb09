"""Dataloaders keep the number of database round trips independent of list sizes."""

from __future__ import annotations

import pytest

REFERENCE = """query($n: Int!) { appointments(first: $n) {
  nodes { patient { name } doctor { name } bill { totalCost } } } }"""

NESTED = """query($n: Int!) { patients(first: $n) { nodes {
  name
  appointments(first: 3) { nodes { doctor { name } bill { totalCost } } }
  prescriptions(first: 2) { nodes { drug doctor { name } } }
  bills(first: 2) { nodes { totalCost appointment { start } } } } } }"""


@pytest.fixture(params=["sqlite", "postgresql"])
def billing_backend(request):
    return request.param


AUDIT = {"audit_log", "audit_head"}
# The request's one audit record: read the chain's end, insert, move the tail anchor
# (and once, for the log's very first record, a read of the log itself).
AUDIT_ROUND_TRIPS = (3, 4)


async def _round_trips(client, mongo_counter, sql_counter, query, n) -> tuple[int, int, dict]:
    """Data round trips; the audit trail's are checked to be a constant apart."""
    mongo_counter.reset()
    sql_counter.reset()
    data = await client.data(query, {"n": n})
    audit = [c for c in mongo_counter.collections if c in AUDIT]
    assert len(audit) in AUDIT_ROUND_TRIPS, mongo_counter.collections
    return len(mongo_counter.commands) - len(audit), len(sql_counter.statements), data


async def test_reference_query_costs_the_same_for_5_and_200_items(
    client, demo, mongo_counter, sql_counter
):
    # The first page after a write also reads the list's key statistics (one grouped
    # aggregation that sizes the page's window, cached until the next write).
    first = await _round_trips(client, mongo_counter, sql_counter, REFERENCE, 5)
    assert mongo_counter.commands.count("aggregate") == 1, mongo_counter.commands
    small = await _round_trips(client, mongo_counter, sql_counter, REFERENCE, 5)
    assert first[0] == small[0] + 1
    large = await _round_trips(client, mongo_counter, sql_counter, REFERENCE, 200)
    assert len(large[2]["appointments"]["nodes"]) == 200
    assert small[:2] == large[:2]
    # The caller's account (revocation check, once per request), then appointments,
    # patients ($in), doctors ($in) and bills (IN): four for the data, five in all.
    assert small[0] + small[1] <= 5, (mongo_counter.commands, sql_counter.statements)
    assert mongo_counter.collections.count("users") == 1


async def test_nested_lists_cost_a_constant_for_5_and_40_parents(
    client, demo, mongo_counter, sql_counter
):
    """Exact counts may differ by one: the doctor loader caches, so prescriptions' doctors
    already fetched for appointments cost nothing. The bound is one query per relation:
    Mongo: caller, patients, appointments, prescriptions, appointment doctors,
    prescription doctors, bills' appointments; SQL: bills per patient, visits' bills."""
    for n in (5, 40):
        mongo, sql, data = await _round_trips(client, mongo_counter, sql_counter, NESTED, n)
        assert len(data["patients"]["nodes"]) == n
        assert mongo <= 7 and sql <= 2, (n, mongo_counter.collections, sql_counter.statements)
