"""What a caller may see of a report (auth/privacy.py), as pure functions: who gets
k-anonymised groups, which groups are kept, which periods are whole UTC days, and the
cache scope that keeps an analyst's answer apart from an administrator's.

tests/reports/ checks the same rules end to end, over HTTP and real data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from bson import ObjectId

from auth.privacy import Disclosure, as_utc, disclosure_for, is_utc_midnight
from auth.roles import Principal, Role
from errors import BadUserInput

K = 5


def caller(role: Role, *, mfa: bool = True) -> Principal:
    return Principal(user_id=ObjectId(), role=role, mfa_verified=mfa)


# --- Who sees what ---------------------------------------------------------------------------


def test_an_administrator_sees_every_group():
    assert disclosure_for(caller(Role.ADMIN), k=K) == Disclosure(None)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.ADMIN], ids=lambda r: r.value)
def test_every_other_role_sees_groups_of_at_least_k(role):
    assert disclosure_for(caller(role), k=K) == Disclosure(K)


def test_an_administrator_before_the_second_factor_is_not_an_administrator_yet():
    assert disclosure_for(caller(Role.ADMIN, mfa=False), k=K) == Disclosure(K)


def test_no_caller_sees_groups_of_at_least_k():
    assert disclosure_for(None, k=K) == Disclosure(K)


def test_each_level_caches_apart():
    scopes = {Disclosure(None).cache_scope, Disclosure(5).cache_scope, Disclosure(10).cache_scope}
    assert scopes == {"full", "k5", "k10"}


# --- Small groups ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patients", "allowed"), [(0, False), (K - 1, False), (K, True), (99, True)]
)
def test_a_group_is_shown_from_k_distinct_patients(patients, allowed):
    assert Disclosure(K).allows(patients) is allowed
    assert Disclosure(None).allows(patients) is True


def test_keep_drops_small_groups_in_order_and_counts_them():
    rows = [
        {"disease": "Flu", "patients": 9},
        {"disease": "Rare", "patients": 1},
        {"disease": "Asthma", "patients": K},
        {"disease": "Gout", "patients": K - 1},
    ]
    kept, suppressed = Disclosure(K).keep(rows)
    assert [row["disease"] for row in kept] == ["Flu", "Asthma"]
    assert suppressed == 2
    assert Disclosure(None).keep(rows) == (rows, 0)


def test_keep_counts_the_column_it_is_told_to():
    rows = [{"doctors": 1, "patients": 50}, {"doctors": 7, "patients": 2}]
    kept, suppressed = Disclosure(K).keep(rows, count="doctors")
    assert kept == [rows[1]] and suppressed == 1


def test_keep_of_nothing_is_nothing():
    assert Disclosure(K).keep([]) == ([], 0)


# --- Whole UTC days --------------------------------------------------------------------------

MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC)
EAST = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("moment", "midnight"),
    [
        pytest.param(MIDNIGHT, True, id="utc-midnight"),
        pytest.param(MIDNIGHT.replace(tzinfo=None), True, id="naive-midnight-is-utc"),
        pytest.param(datetime(2026, 3, 1, 2, tzinfo=EAST), True, id="02:00+02:00"),
        pytest.param(datetime(2026, 3, 1, tzinfo=EAST), False, id="local-midnight-elsewhere"),
        pytest.param(MIDNIGHT + timedelta(microseconds=1), False, id="one-microsecond-after"),
        pytest.param(MIDNIGHT + timedelta(minutes=5), False, id="five-minutes-after"),
    ],
)
def test_a_whole_day_bound_is_midnight_utc(moment, midnight):
    assert is_utc_midnight(moment) is midnight


def test_naive_times_are_taken_as_utc():
    assert as_utc(datetime(2026, 3, 1, 9)) == datetime(2026, 3, 1, 9, tzinfo=UTC)
    assert as_utc(datetime(2026, 3, 1, 11, tzinfo=EAST)) == datetime(2026, 3, 1, 9, tzinfo=UTC)


def test_k_anonymised_callers_may_ask_for_whole_days_or_no_bound():
    Disclosure(K).check_period(**{"from": MIDNIGHT, "before": None})


def test_a_finer_period_is_refused_naming_the_bound():
    later = MIDNIGHT + timedelta(hours=9)
    with pytest.raises(BadUserInput) as refused:
        Disclosure(K).check_period(**{"from": MIDNIGHT, "before": later})
    assert refused.value.extensions["field"] == "before"
    assert "midnight UTC" in str(refused.value)


def test_administrators_may_ask_for_any_instant():
    Disclosure(None).check_period(**{"from": MIDNIGHT + timedelta(seconds=1)})
