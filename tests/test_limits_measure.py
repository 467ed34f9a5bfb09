"""schema/limits.py's measurement, as a pure function over parsed documents: depth,
aliases (inside fragments too), cost (lists count their page size) and oversized pages."""

from __future__ import annotations

from typing import Any

import pytest
from graphql import GraphQLError, parse

from schema.limits import COST_CEILING, Limits, limit_errors, measure, select_operation
from tests.support import default_schema

SCHEMA = default_schema()._schema
LIMITS = Limits(
    max_depth=12, max_aliases=50, max_cost=25_000, page_size_default=100, page_size_max=500
)


def extensions(error: GraphQLError) -> dict[str, Any]:
    """A limit error's extensions, which every limit error has."""
    assert error.extensions is not None, error
    return error.extensions


def measured(query: str, variables: dict | None = None, limits: Limits = LIMITS):
    document = parse(query)
    operation = select_operation(document, None)
    assert operation is not None
    return measure(SCHEMA, document, operation, variables=variables, limits=limits)


def test_a_leaf_at_the_root_is_depth_one_cost_one():
    result = measured("{ me { id } }")
    assert (result.depth, result.aliases, result.cost) == (2, 0, 2)


def test_a_list_multiplies_what_is_inside_it_by_its_page_size():
    # patients (1) + nodes (1) + 20 x (id + name)
    result = measured("{ patients(first: 20) { nodes { id name } } }")
    assert result.cost == 1 + 1 + 20 * 2
    assert result.depth == 3


def test_a_list_without_first_counts_the_default_page_size():
    result = measured("{ patients { nodes { id } } }")
    assert result.cost == 1 + 1 + 100


def test_nested_lists_multiply():
    query = "{ doctors(first: 10) { nodes { appointments(first: 5) { nodes { id } } } } }"
    # doctors, nodes, 10 x appointments, 10 x nodes, 10 x 5 x id
    assert measured(query).cost == 1 + 1 + 10 + 10 + 50


def test_page_sizes_from_variables_and_their_defaults_count():
    query = "query($n: Int = 7) { patients(first: $n) { nodes { id } } }"
    assert measured(query).cost == 1 + 1 + 7
    assert measured(query, {"n": 30}).cost == 1 + 1 + 30


def test_a_page_over_the_cap_is_noted_and_counted_at_the_cap():
    result = measured("{ patients(first: 10000) { nodes { id } } }")
    assert result.oversized_page == ("patients", 10000)
    assert result.cost == 1 + 1 + 500
    [error] = limit_errors(result, LIMITS)
    assert extensions(error)["code"] == "BAD_USER_INPUT"


def test_aliases_are_counted_where_a_fragment_is_spread():
    query = """{ a: me { ...F } b: me { ...F } }
    fragment F on User { x: id y: email }"""
    # a, b, and x, y in each of the two spreads
    assert measured(query).aliases == 2 + 2 * 2


def test_depth_counts_through_fragments_and_inline_fragments():
    query = """{ patients(first: 1) { nodes { ...P } } }
    fragment P on Patient { appointments(first: 1) { nodes { ... on Appointment { id } } } }"""
    assert measured(query).depth == 5


def test_each_limit_has_its_own_code_with_the_measured_value():
    query = "{ " + " ".join(f"a{n}: me {{ id }}" for n in range(3)) + " }"
    tight = Limits(
        max_depth=1, max_aliases=2, max_cost=1000, page_size_default=100, page_size_max=500
    )
    errors = {
        extensions(error)["code"]: extensions(error)
        for error in limit_errors(measured(query, limits=tight), tight)
    }
    assert set(errors) == {"MAX_DEPTH_LIMIT", "MAX_ALIASES_LIMIT"}
    assert (errors["MAX_DEPTH_LIMIT"]["measured"], errors["MAX_DEPTH_LIMIT"]["limit"]) == (2, 1)
    assert errors["MAX_ALIASES_LIMIT"]["measured"] == 3


def test_over_the_cost_budget_the_measurement_stops_and_is_refused():
    cheap = Limits(
        max_depth=12, max_aliases=50, max_cost=3, page_size_default=100, page_size_max=500
    )
    result = measured("{ a: me { id } b: me { id } c: me { id } }", limits=cheap)
    # Stopped at the first field past the budget: c was never walked.
    assert result.cost == 4 and result.aliases == 2
    [error] = limit_errors(result, cheap)
    assert extensions(error)["code"] == "COST_ESTIMATED_TOO_EXPENSIVE"
    assert (extensions(error)["measured"], extensions(error)["limit"]) == (4, 3)


def test_within_every_limit_there_is_no_error():
    assert limit_errors(measured("{ me { id email } }"), LIMITS) == []


def test_the_walk_stops_once_over_budget_and_the_cost_saturates():
    # Ten fragments each spreading the next ten times: 10^10 fields if walked out.
    fragments = (
        "\n".join(
            f"fragment F{n} on Patient {{ "
            + " ".join(
                f"a{m}: appointments(first: 1) {{ nodes {{ patient {{ ...F{n + 1} }} }} }}"
                for m in range(10)
            )
            + " }"
            for n in range(10)
        )
        + "\nfragment F10 on Patient { id }"
    )
    result = measured("{ patients(first: 500) { nodes { ...F0 } } }\n" + fragments)
    assert LIMITS.max_cost < result.cost <= COST_CEILING


@pytest.mark.parametrize(
    ("query", "name", "found"),
    [
        ("query A { me { id } } query B { me { id } }", None, None),  # ambiguous
        ("query A { me { id } } query B { me { id } }", "B", "B"),
        ("query A { me { id } }", "C", None),
        ("{ me { id } }", None, ""),
    ],
)
def test_select_operation(query, name, found):
    operation = select_operation(parse(query), name)
    if found is None:
        assert operation is None
    else:
        assert operation is not None and (operation.name.value if operation.name else "") == found


def test_a_total_count_weighs_count_weight_fields_per_parent():
    from schema.limits import COUNT_WEIGHT

    query = "{ doctors(first: 30) { nodes { appointments(first: 1) { totalCount } } } }"
    # doctors, nodes, 30 x appointments, 30 x totalCount (a count, not a field)
    assert measured(query).cost == 1 + 1 + 30 + 30 * COUNT_WEIGHT
    assert measured("{ patients(first: 1) { totalCount } }").cost == 1 + COUNT_WEIGHT
