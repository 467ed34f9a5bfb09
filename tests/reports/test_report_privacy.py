"""What analysts may see of reports (k-anonymity, no patient identifiers), and who may
call reports at all.
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager

import pytest
from bson import ObjectId
from starlette.applications import Starlette

from auth.roles import Role
from runtime.services import Services
from tests.reports.support import (
    FUTURE_YEAR,
    PERIODS,
    QUERIES,
    STATS,
    K,
    Stored,
    ask,
    expected,
    period_variables,
    stored,
)
from tests.support import GraphQLClient, issue_token, signed_in

# -- 2. privacy -----------------------------------------------------------------------------

PRIVACY_CASES = [
    ("topDoctors", {"limit": 100}),
    ("diseaseTreatmentDurations", {}),
    ("diseaseTreatmentDurations", period_variables(*PERIODS["closed period in the past"])),
    # The hand-made upcoming visits: two patients in that month.
    ("monthlyAppointmentTrend", {"year": FUTURE_YEAR}),
    ("averagePrescriptionCostByDisease", {}),
    ("averagePrescriptionCostByDisease", period_variables(*PERIODS["from only"])),
]


def withheld_from_admin_result(report: str, full: dict, k: int) -> tuple[dict, int]:
    """What an analyst should get, derived from the administrator's answer."""
    if report == "monthlyAppointmentTrend":
        months, hidden = [], 0
        for m in full["months"]:
            if 0 < m["patients"] < k:
                hidden += 1
                m = {"month": m["month"], "suppressed": True} | dict.fromkeys(
                    ("scheduled", "completed", "cancelled", "patients")
                )
            months.append(m)
        return {**full, "months": months}, hidden
    if report == "averagePrescriptionCostByDisease":
        rows, hidden = [], 0
        for r in full["rows"]:
            r = dict(r)
            if r["prescribedPatients"] is not None and r["prescribedPatients"] < k:
                r.update(prescriptions=None, averagePrescriptionCost=None, prescribedPatients=None)
            if r["billedPatients"] is not None and r["billedPatients"] < k:
                r.update(bills=None, averageBilledTotal=None, billedPatients=None)
            if r["prescriptions"] is None and r["bills"] is None:
                hidden += 1
            else:
                rows.append(r)
        return {**full, "rows": rows}, hidden
    count = "distinctPatients" if report == "topDoctors" else "patients"
    kept = [r for r in full["rows"] if r[count] >= k]
    hidden = len(full["rows"]) - len(kept)
    if report == "topDoctors":
        kept = [{**r, "rank": rank} for rank, r in enumerate(kept, start=1)]
    return {**full, "rows": kept}, hidden


@pytest.mark.parametrize(("report", "variables"), PRIVACY_CASES)
async def test_analysts_see_no_group_smaller_than_k(
    client, analyst, services, data_set, settings, report, variables
):
    k = settings.report_min_group_size
    assert k == K
    full = (await ask(client, report, variables)).report
    seen = (await ask(analyst, report, variables)).report
    assert full["privacy"] == {"minimumGroupSize": None, "suppressedGroups": 0}

    want, hidden = withheld_from_admin_result(report, {**full, "privacy": None}, k)
    assert hidden > 0, "the data set should have a group below k for this report"
    assert seen == {**want, "privacy": {"minimumGroupSize": k, "suppressedGroups": hidden}}
    # And the same from the stored records directly.
    assert seen == expected(report, await stored(services), variables, k=k)


@pytest.mark.parametrize("min_group_size", [12])
async def test_k_comes_from_the_settings(analyst, services, demo, min_group_size):
    # Demo doctors have 20, 14, 11, 11, 11 and 10 distinct patients.
    seen = (await ask(analyst, "topDoctors", {"limit": 100})).report
    assert [r["distinctPatients"] for r in seen["rows"]] == [20, 14]
    assert seen["privacy"] == {"minimumGroupSize": 12, "suppressedGroups": 4}
    assert seen == expected("topDoctors", await stored(services), {"limit": 100}, k=12)


async def test_analyst_responses_carry_no_patient_identifier(analyst, services, data_set):
    patient_ids = (await stored(services)).patient_ids
    assert len(patient_ids) == 42
    for report, variables in PRIVACY_CASES:
        body = await analyst.post(QUERIES[report], variables)
        assert "errors" not in body
        text = json.dumps(body)
        leaked = [p for p in patient_ids if p in text]
        assert not leaked, f"{report} shows patient ids {leaked}"
        assert "patient" not in text.lower().replace("patients", ""), text


MINIMAL = {
    "topDoctors": "{ topDoctors { rows { doctorId } } }",
    "diseaseTreatmentDurations": "{ diseaseTreatmentDurations { rows { disease } } }",
    "monthlyAppointmentTrend": "{ monthlyAppointmentTrend(year: 2026) { year } }",
    "averagePrescriptionCostByDisease": "{ averagePrescriptionCostByDisease { rows { disease } } }",
    "reportCacheStats": "{ reportCacheStats { hits } }",
}


async def caller(
    app: Starlette, services: Services, role: Role | str | None, stored_records: Stored
) -> AbstractAsyncContextManager[GraphQLClient]:
    if role is None:
        return signed_in(app)
    if not isinstance(role, Role):
        assert role == "ADMIN without second factor", role
        return signed_in(app, await issue_token(services, Role.ADMIN, mfa=False))
    patient = ObjectId(stored_records.patient_ids[0]) if role is Role.PATIENT else None
    doctor = next(iter(stored_records.doctors)) if role is Role.DOCTOR else None
    return signed_in(app, await issue_token(services, role, patient_id=patient, doctor_id=doctor))


@pytest.mark.parametrize(
    ("role", "code"),
    [
        (Role.PATIENT, "FORBIDDEN"),
        (Role.DOCTOR, "FORBIDDEN"),
        (Role.PHARMACIST, "FORBIDDEN"),
        ("ADMIN without second factor", "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ],
    ids=["patient", "doctor", "pharmacist", "admin-without-mfa", "anonymous"],
)
async def test_only_admins_and_analysts_may_run_reports(app, services, demo, role, code):
    async with await caller(app, services, role, await stored(services)) as other:
        for field, query in MINIMAL.items():
            body = await other.post(query)
            assert body["data"] is None or body["data"][field] is None, body
            assert [e["extensions"]["code"] for e in body["errors"]] == [code], (field, body)


async def test_report_cache_stats_are_for_admins_only(client, analyst, demo):
    for field, query in MINIMAL.items():
        if field != "reportCacheStats":
            assert (await analyst.data(query))[field] is not None
    error = await analyst.error(MINIMAL["reportCacheStats"])
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert (await client.data(STATS))["reportCacheStats"]["errors"] == 0


BACKWARDS = {"from": "2026-02-01T00:00:00Z", "before": "2026-01-31T00:00:00Z"}


@pytest.mark.parametrize(
    ("report", "variables", "field"),
    [
        ("topDoctors", {"limit": 0}, "limit"),
        ("topDoctors", {"limit": 101}, "limit"),
        ("topDoctors", BACKWARDS, "before"),
        ("diseaseTreatmentDurations", BACKWARDS, "before"),
        ("averagePrescriptionCostByDisease", BACKWARDS, "before"),
        ("monthlyAppointmentTrend", {"year": 1899}, "year"),
    ],
)
async def test_bad_arguments_are_refused(client, report, variables, field):
    error = await client.error(QUERIES[report], variables)
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["field"] == field
