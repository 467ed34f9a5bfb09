"""Minimum necessary: a pharmacist checks prescriptions with the patient's age, not their
date of birth nor the record's dates (45 CFR §164.502(b))."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from auth.roles import Role
from schema.patient import whole_months_between
from tests.conftest import http_client
from tests.factories import create_patient
from tests.support import issue_token

PATIENT_FIELDS = "birthDate createdAt updatedAt age ageInMonths name"
NARROWED = {"birthDate", "createdAt", "updatedAt"}


async def read_patient(app, services, role: Role, patient_id: str) -> dict:
    token = await issue_token(services, role)
    async with http_client(app, token) as caller:
        return await caller.post(f'{{ patient(id: "{patient_id}") {{ {PATIENT_FIELDS} }} }}')


async def test_a_pharmacist_gets_the_age_but_not_the_birth_date(app, services, client):
    patient = await create_patient(client, birthDate="2024-01-15")
    body = await read_patient(app, services, Role.PHARMACIST, patient["id"])

    forbidden = {
        error["path"][-1] for error in body["errors"] if error["extensions"]["code"] == "FORBIDDEN"
    }
    assert forbidden == NARROWED, body
    seen = body["data"]["patient"]
    assert {name for name in NARROWED if seen[name] is not None} == set()
    months = whole_months_between(date(2024, 1, 15), datetime.now(UTC).date())
    assert seen["ageInMonths"] == months and seen["age"] == months // 12


async def test_an_administrator_still_sees_the_birth_date(app, services, client):
    patient = await create_patient(client, birthDate="2024-01-15")
    body = await read_patient(app, services, Role.ADMIN, patient["id"])
    assert "errors" not in body, body
    assert body["data"]["patient"]["birthDate"] == "2024-01-15"


@pytest.mark.parametrize(
    ("born", "today", "months"),
    [
        (date(2000, 1, 31), date(2000, 2, 29), 0),  # the 31st has not come round yet
        (date(2000, 1, 31), date(2000, 3, 1), 1),
        (date(2025, 6, 10), date(2025, 6, 10), 0),  # born today
        (date(2025, 6, 10), date(2025, 7, 9), 0),
        (date(2025, 6, 10), date(2025, 7, 10), 1),
        (date(2000, 3, 15), date(2026, 3, 14), 311),
        (date(2000, 3, 15), date(2026, 3, 15), 312),
        (date(2024, 2, 29), date(2025, 2, 28), 11),  # like `age`: 1 year on 1 March
        (date(2024, 2, 29), date(2025, 3, 1), 12),
    ],
)
def test_whole_months_between(born, today, months):
    assert whole_months_between(born, today) == months
