"""Every report's answer, over HTTP, equals the value computed here from the stored
records (MongoDB collections and the SQL `bills` table read with a plain query),
following the rules in the schema descriptions: on the demo data, on hand-made edge
records, and for every kind of period.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import create_doctor, create_patient, iso
from tests.reports.support import (
    CANCEL,
    DAY,
    EDGE_VISIT,
    FUTURE_YEAR,
    PERIODS,
    RARE,
    ask,
    book_at,
    create_bill,
    current_hour,
    expected,
    parse_moment,
    period_variables,
    prescribe,
    stored,
    utc,
)

# -- 1. correctness -------------------------------------------------------------------------


@pytest.mark.parametrize("period", PERIODS)
async def test_top_doctors_match_the_stored_appointments(client, services, data_set, period):
    variables = {"limit": 100, **period_variables(*PERIODS[period])}
    answer = await ask(client, "topDoctors", variables)
    assert answer.report == expected("topDoctors", await stored(services), variables)


async def test_top_doctors_limit_keeps_the_best_ranked(client, services, data_set):
    answer = await ask(client, "topDoctors", {"limit": 3})
    want = expected("topDoctors", await stored(services), {"limit": 3})
    assert answer.report == want
    assert [row["rank"] for row in answer.report["rows"]] == [1, 2, 3]


async def test_top_doctors_ties_and_cancelled_visits(client, services):
    """Distinct patients first, then appointments, then doctor id; a cancelled visit is
    neither an appointment nor a patient of the doctor."""
    # Created in this order, so ids ascend as listed; names descend, to tell the orders apart.
    zed = await create_doctor(client, givenName="Zed", familyName="Zimmer")
    amy = await create_doctor(client, givenName="Amy", familyName="Adams")
    bob = await create_doctor(client, givenName="Bob", familyName="Brown")
    cat = await create_doctor(client, givenName="Cat", familyName="Carter")
    p1, p2, p3 = [await create_patient(client, givenName=name) for name in ("Pia", "Pam", "Pol")]
    for doctor, patients in (
        (zed, [p1, p2]),
        (amy, [p2, p1]),
        (bob, [p1, p2, p1]),
        (cat, [p3] * 3),
    ):
        for patient in patients:
            await book_at(client, services, patient, doctor)
    # Counted, cat would lead with two patients and four appointments.
    await client.data(CANCEL, {"id": await book_at(client, services, p1, cat)})
    # Only a cancelled visit: dan is nobody's doctor in this report.
    dan = await create_doctor(client, givenName="Dan", familyName="Dunn")
    await client.data(CANCEL, {"id": await book_at(client, services, p3, dan)})

    answer = await ask(client, "topDoctors", {"limit": 10})
    summary = [
        (row["doctorName"], row["distinctPatients"], row["appointments"])
        for row in answer.report["rows"]
    ]
    assert summary == [
        ("Bob Brown", 2, 3),
        ("Zed Zimmer", 2, 2),
        ("Amy Adams", 2, 2),
        ("Cat Carter", 1, 3),
    ]
    assert answer.report == expected("topDoctors", await stored(services), {"limit": 10})


@pytest.mark.parametrize("period", PERIODS)
async def test_treatment_durations_match_the_stored_episodes(client, services, data_set, period):
    variables = period_variables(*PERIODS[period])
    answer = await ask(client, "diseaseTreatmentDurations", variables)
    assert answer.report == expected("diseaseTreatmentDurations", await stored(services), variables)


async def test_open_prescription_runs_until_before_or_now(client, services, edges):
    """The one RARE episode: the visit on EDGE_VISIT and an open prescription from
    OPEN_RX_START; the undiagnosed, the scheduled and the unindicated records add nothing."""

    async def rare_days(variables: dict) -> float | None:
        rows = (await ask(client, "diseaseTreatmentDurations", variables)).report["rows"]
        return next((row["averageDays"] for row in rows if row["disease"] == RARE), None)

    until = utc(2026, 3, 1)
    assert await rare_days({"before": iso(until)}) == pytest.approx(
        (until - EDGE_VISIT) / DAY, abs=0.006
    )
    now = current_hour()
    assert await rare_days({"before": iso(utc(2099, 1, 1))}) == pytest.approx(
        (now - EDGE_VISIT) / DAY, abs=0.01
    )
    assert await rare_days({}) == pytest.approx((now - EDGE_VISIT) / DAY, abs=0.01)
    # From the day after the visit only the prescription is in the period.
    start = utc(2026, 2, 11)
    rx_start = utc(2026, 2, 12)
    assert await rare_days({"from": iso(start), "before": iso(until)}) == pytest.approx(
        (until - rx_start) / DAY, abs=0.006
    )
    # Before the prescription starts only the 30-minute visit counts.
    assert await rare_days({"before": iso(rx_start)}) == pytest.approx(30 / 1440, abs=0.006)
    # Nothing of RARE starts in this period.
    assert await rare_days({"before": iso(utc(2026, 2, 1))}) is None


@pytest.mark.parametrize("year", sorted({2025, 2026, FUTURE_YEAR}))
async def test_monthly_trend_matches_the_stored_appointments(client, services, data_set, year):
    answer = await ask(client, "monthlyAppointmentTrend", {"year": year})
    report = answer.report
    assert [m["month"] for m in report["months"]] == list(range(1, 13))
    assert report == expected("monthlyAppointmentTrend", await stored(services), {"year": year})


async def test_monthly_trend_has_zeros_for_empty_months(client):
    report = (await ask(client, "monthlyAppointmentTrend", {"year": 2001})).report
    assert report["months"] == [
        {
            "month": m,
            "suppressed": False,
            "scheduled": 0,
            "completed": 0,
            "cancelled": 0,
            "patients": 0,
        }
        for m in range(1, 13)
    ]


async def test_a_prescription_starting_later_is_a_zero_length_episode(client, services, edges):
    """Found by a test over HTTP: an open prescription starting in 2030 made its episode
    end 'now', before it began, and the average came out negative."""
    disease = "Future flu"
    patient = await create_patient(client, givenName="Fay", familyName="Future")
    await prescribe(client, patient, edges.doctor, indication=disease, start="2030-01-01")
    rows = (await ask(client, "diseaseTreatmentDurations", {})).report["rows"]
    assert [row["averageDays"] for row in rows if row["disease"] == disease] == [0]


@pytest.mark.parametrize("period", PERIODS)
async def test_costs_match_stored_prescriptions_and_bills(client, services, data_set, period):
    variables = period_variables(*PERIODS[period])
    answer = await ask(client, "averagePrescriptionCostByDisease", variables)
    assert answer.report == expected(
        "averagePrescriptionCostByDisease", await stored(services), variables
    )


async def test_costs_join_prescriptions_and_bills_by_disease(client, services, edges):
    """Only the edge records: RARE has one prescription (the unindicated one is no
    disease's) and one bill; a disease billed but never prescribed has a null side."""
    await create_bill(
        client,
        edges.patient,
        disease="Billed only",
        total="80.50",
        appointment_id=edges.plain_visit,
    )
    rows = (await ask(client, "averagePrescriptionCostByDisease")).report["rows"]
    assert rows == [
        {
            "disease": "Billed only",
            "prescriptions": None,
            "averagePrescriptionCost": None,
            "prescribedPatients": None,
            "bills": 1,
            "averageBilledTotal": "80.50",
            "billedPatients": 1,
        },
        {
            "disease": RARE,
            "prescriptions": 1,
            "averagePrescriptionCost": "12.34",
            "prescribedPatients": 1,
            "bills": 1,
            "averageBilledTotal": "250.00",
            "billedPatients": 1,
        },
    ]


async def test_periods_include_from_and_exclude_before(client, services, edges):
    """[from, before) on each source: appointment starts, prescription start dates (UTC
    midnight) and bill creation times, each probed at exactly its own instant."""
    bill = await client.data("query($id: ID!) { bill(id: $id) { createdAt } }", {"id": edges.bill})
    billed_at = parse_moment(bill["bill"]["createdAt"])
    assert billed_at is not None, bill
    rx_start = utc(2026, 2, 12)
    probes = [
        ("topDoctors", EDGE_VISIT),
        ("diseaseTreatmentDurations", EDGE_VISIT),
        ("diseaseTreatmentDurations", rx_start),
        ("averagePrescriptionCostByDisease", rx_start),
        ("averagePrescriptionCostByDisease", billed_at),
    ]
    records = await stored(services)
    for report, instant in probes:
        for variables in (
            {"from": iso(instant), "before": iso(instant + timedelta(milliseconds=1))},
            {"from": iso(instant - timedelta(milliseconds=1)), "before": iso(instant)},
        ):
            answer = await ask(client, report, variables)
            assert answer.report == expected(report, records, variables), (report, variables)
    # Spot checks by hand: the bill is in a period starting at its creation, not before.
    costs = "averagePrescriptionCostByDisease"
    starting = {"from": iso(billed_at)}
    ending = {"before": iso(billed_at)}
    assert [r["bills"] for r in (await ask(client, costs, starting)).report["rows"]] == [1]
    assert [r["bills"] for r in (await ask(client, costs, ending)).report["rows"]] == [None]


async def test_monthly_trend_uses_utc_month_and_year_boundaries(client, services):
    patient = await create_patient(client)
    doctor = await create_doctor(client)
    moments = [
        utc(2025, 12, 31, 23, 45),
        utc(2026, 1, 1, 0, 0),
        utc(2026, 5, 31, 23, 45),
        utc(2026, 6, 1, 0, 0),
        utc(2026, 12, 31, 23, 45),
        utc(2027, 1, 1, 0, 0),
    ]
    for moment in moments:
        await book_at(client, services, patient, doctor, moment)
    months = (await ask(client, "monthlyAppointmentTrend", {"year": 2026})).report["months"]
    scheduled = {m["month"]: m["scheduled"] for m in months if m["scheduled"]}
    assert scheduled == {1: 1, 5: 1, 6: 1, 12: 1}
    for year in (2025, 2026, 2027):
        answer = await ask(client, "monthlyAppointmentTrend", {"year": year})
        assert answer.report == expected(
            "monthlyAppointmentTrend", await stored(services), {"year": year}
        )


@pytest.mark.parametrize("billing_backend", ["sqlite", "postgresql"], indirect=True)
async def test_costs_on_each_billing_database(client, services, data_set, billing_backend):
    for period in ("all time", "closed period in the past"):
        variables = period_variables(*PERIODS[period])
        answer = await ask(client, "averagePrescriptionCostByDisease", variables)
        assert answer.report == expected(
            "averagePrescriptionCostByDisease", await stored(services), variables
        )
