"""Differencing attacks on analysts' reports: two periods a few minutes apart must not
isolate one appointment (or bill). Analysts may pass only midnight UTC as a period bound
(auth/privacy.py); administrators, who see everything anyway, may pass any instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import ObjectId

from auth.roles import Role
from datasources.billing_tables import bills
from tests.conftest import http_client
from tests.reports.support import QUERIES, K
from tests.support import issue_token

DAY_START = datetime(2026, 2, 10, tzinfo=UTC)
T = DAY_START + timedelta(hours=10)  # the attacker's first `before`
THE_ONE = T + timedelta(minutes=2)  # one more visit (and bill), between the two windows
DISEASE = "Migraine"
# Every report with a period; monthlyAppointmentTrend has only a year.
PERIOD_REPORTS = ("topDoctors", "diseaseTreatmentDurations", "averagePrescriptionCostByDisease")


@pytest.fixture
async def visits(services) -> None:
    """K patients seen by one doctor that morning, each billed; then one more patient at
    THE_ONE. Every window from midnight holds at least K patients: no suppression hides
    the difference, only the period rule can."""
    db = services.db
    doctor = ObjectId()
    await db["doctors"].insert_one(
        {"_id": doctor, "givenName": "Ana", "familyName": "Ng", "specialty": "NEUROLOGY"}
    )
    starts = [DAY_START + timedelta(hours=8, minutes=20 * n) for n in range(K)] + [THE_ONE]
    appointments, rows = [], []
    for start in starts:
        patient, appointment = ObjectId(), ObjectId()
        appointments.append(
            {
                "_id": appointment,
                "doctorId": doctor,
                "patientId": patient,
                "start": start,
                "end": start + timedelta(minutes=20),
                "status": "COMPLETED",
                "diagnosis": DISEASE,
            }
        )
        rows.append(
            {
                "patient_id": str(patient),
                "appointment_id": str(appointment),
                "disease": DISEASE,
                "total_cost_cents": 8_000 if start == THE_ONE else 4_000,
                "created_at": start + timedelta(minutes=1),
            }
        )
    await db["appointments"].insert_many(appointments)
    async with services.engine.begin() as connection:
        await connection.execute(bills.insert(), rows)


async def answer(app, token: str, report: str, variables: dict) -> dict:
    async with http_client(app, token) as caller:
        return await caller.post(QUERIES[report], variables)


def window(before: datetime) -> dict[str, str]:
    return {"from": DAY_START.isoformat(), "before": before.isoformat()}


@pytest.mark.parametrize("report", PERIOD_REPORTS)
async def test_two_windows_minutes_apart_reveal_nothing_to_an_analyst(
    app, services, visits, report
):
    first, second = window(T), window(T + timedelta(minutes=5))
    # The attack is real: the two answers differ by the one visit for an administrator.
    admin = await issue_token(services, Role.ADMIN)
    full = [await answer(app, admin, report, w) for w in (first, second)]
    assert all("errors" not in body for body in full), full
    assert full[0]["data"] != full[1]["data"]

    analyst = await issue_token(services, Role.ANALYST)
    seen = [await answer(app, analyst, report, w) for w in (first, second)]
    assert seen[0] == seen[1], "the analyst can tell the two windows apart"
    for body in seen:
        assert body["data"] == {"report": None}, body
        [error] = body["errors"]
        assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "before"}
        assert "whole UTC days" in error["message"]


@pytest.mark.parametrize("report", PERIOD_REPORTS)
async def test_analysts_get_whole_days_and_one_cache_entry_per_day(app, services, visits, report):
    analyst = await issue_token(services, Role.ANALYST)
    next_midnight = DAY_START + timedelta(days=1)
    in_utc = await answer(app, analyst, report, window(next_midnight))
    assert "errors" not in in_utc, in_utc
    # The same midnight written as 01:00+01:00: the same period, served from the cache.
    paris = next_midnight.astimezone(timezone(timedelta(hours=1)))
    again = await answer(app, analyst, report, window(paris))
    assert again["data"] == in_utc["data"]
    assert again["extensions"]["reportCache"] == [{"report": report, "hit": True}]
    # A bound a second past midnight is refused, `from` as well as `before`.
    late_start = {"from": (DAY_START + timedelta(seconds=1)).isoformat()}
    [error] = (await answer(app, analyst, report, late_start))["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "field": "from"}
