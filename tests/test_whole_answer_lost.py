"""When a dependency failure costs the whole answer (HTTP 503) or only part of it (200)."""

from __future__ import annotations

from runtime.request_guard import whole_answer_lost


def test_no_data_is_a_lost_answer() -> None:
    assert whole_answer_lost(None, {"patients"})


def test_a_nullable_mutation_that_a_dependency_failed_is_a_lost_answer() -> None:
    assert whole_answer_lost({"createPatient": None}, {"createPatient"})


def test_every_root_field_lost_is_a_lost_answer() -> None:
    assert whole_answer_lost({"a": None, "b": None}, {"a", "b"})


def test_a_root_field_that_answered_keeps_the_answer_partial() -> None:
    assert not whole_answer_lost({"a": {"id": "1"}, "b": None}, {"b"})


def test_a_root_field_null_for_another_reason_is_an_answer() -> None:
    # `login` refused by the throttle (RATE_LIMITED) while Redis is down, or
    # `patient(id:)` for an unknown id: null by design, not lost to the dependency.
    assert not whole_answer_lost({"login": None}, {None})
    assert not whole_answer_lost({"patient": None, "bills": None}, {"bills"})


def test_failures_below_the_root_leave_the_answer_partial() -> None:
    assert not whole_answer_lost({"patients": {"nodes": []}}, {"patients"})
