"""Operation limits (depth, aliases, tokens, page size, cost), circular fragments, absurd
nesting and fragment bombs (DESIGN.md §5) are refused before any resolver runs, never
with a 500: each refusal is checked with the MongoDB and SQL round-trip counters
(nothing but the one account lookup that authenticates the caller), and a control runs
the same operation on an app whose limit is raised, so it is the limit, and nothing
else, that refused it.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.hardening.support import PATIENT_INPUT, _maybe_variant, chain, only_error
from tests.support import signed_in

# --- Operations of a chosen size ------------------------------------------------------------


def fragment_chain(last: str) -> str:
    """Depth 11 spread over four nested fragments, then `last` inside the fourth."""
    hop = "appointments(first: 1) { nodes { patient { ...P%d } } }"
    return (
        "{ patients(first: 1) { nodes { ...P1 } } }\n"
        + "\n".join(f"fragment P{n} on Patient {{ {hop % (n + 1)} }}" for n in (1, 2, 3))
        + f"\nfragment P4 on Patient {{ {last} }}"
    )


DEPTH_12_IN_FRAGMENTS = fragment_chain("__typename")  # __typename at depth 12
DEPTH_13_IN_FRAGMENTS = fragment_chain("appointments(first: 1) { totalCount }")


def aliased(names: range, prefix: str = "a") -> str:
    return " ".join(f"{prefix}{n}: patients(first: 1) {{ totalCount }}" for n in names)


def aliases_at_root(count: int) -> str:
    return f"{{ {aliased(range(count))} }}"


def aliases_in_fragment(per_spread: int, spreads: int) -> str:
    """`per_spread` aliases in one fragment, spread `spreads` times (each spread counts)."""
    spread = " ".join(["...F"] * spreads)
    return f"{{ {spread} }} fragment F on Query {{ {aliased(range(per_spread))} }}"


def aliases_in_inline_fragments(count: int) -> str:
    half = count // 2
    return (
        f"{{ ... on Query {{ {aliased(range(half))} }}"
        f" ... on Query {{ {aliased(range(half, count))} }} }}"
    )


def operations(count: int) -> str:
    """`count` small operations in one document, 13 tokens each; run Q0."""
    return " ".join(f"query Q{n} {{ patients(first: 1) {{ totalCount }} }}" for n in range(count))


NESTED_PAGES = "{ patients(first: 500) { nodes { appointments(first: 500) { nodes { id } } } } }"
NESTED_PAGES_FROM_VARIABLE = (
    "query($n: Int!) { patients(first: $n) { nodes { appointments(first: $n) { nodes { id } } } } }"
)
PAGE_OVER_CAP = "{ patients(first: 501) { totalCount } }"
PAGE_OVER_CAP_NESTED = (
    "{ patients(first: 1) { nodes { appointments(first: 501) { totalCount } } } }"
)
PAGE_FROM_VARIABLE = "query($n: Int) { patients(first: $n) { nodes { id } } }"
PAGE_FROM_VARIABLE_DEFAULT = "query($n: Int = 501) { patients(first: $n) { nodes { id } } }"


# --- Limits: what passes ------------------------------------------------------------------

AT_THE_LIMITS = [
    pytest.param(chain(12), {}, id="depth-12"),
    pytest.param(DEPTH_12_IN_FRAGMENTS, {}, id="depth-12-in-nested-fragments"),
    pytest.param(aliases_at_root(50), {}, id="50-aliases"),
    pytest.param(
        aliases_in_fragment(25, spreads=2), {}, id="50-aliases-in-a-fragment-spread-twice"
    ),
    pytest.param(aliases_in_inline_fragments(50), {}, id="50-aliases-in-inline-fragments"),
    pytest.param(PAGE_FROM_VARIABLE, {"n": 500}, id="page-500-from-variable"),
    pytest.param(NESTED_PAGES_FROM_VARIABLE, {"n": 10}, id="nested-pages-of-10"),
    pytest.param(operations(230), {}, id="2990-tokens"),
]


@pytest.mark.parametrize(("query", "variables"), AT_THE_LIMITS)
async def test_operation_at_the_limits_runs(api, query, variables):
    settings = api.settings
    assert (settings.max_depth, settings.max_aliases, settings.max_tokens) == (12, 50, 3000)
    assert (settings.page_size_max, settings.max_cost) == (500, 25_000)
    operation = "Q0" if "query Q0" in query else None
    data = await api.data(query, variables, operationName=operation)
    assert data


def test_chain_is_as_deep_as_asked():
    """The depth fixtures are what they claim: count the open braces."""
    for depth in (2, 12, 13):
        assert max_nesting(chain(depth)) == depth
    assert chain(3) == "{ patients(first: 1) { nodes { __typename } } }"


def max_nesting(query: str) -> int:
    deepest = level = 0
    for character in query:
        level += {"{": 1, "}": -1}.get(character, 0)
        deepest = max(deepest, level)
    return deepest


async def test_depth_at_the_limit_reaches_the_last_record(api):
    """The depth-12 chain walks real records to its end, so depth 13 has something to refuse."""
    data = await api.data(chain(12))
    node = data["patients"]["nodes"][0]
    for field in ("appointments", "nodes", "patient") * 3:
        node = node[field][0] if field == "nodes" else node[field]
    assert node == {"__typename": "Patient"}


# --- Limits: what is refused, before any resolver -------------------------------------------

OVER_THE_LIMITS = [
    pytest.param(chain(13), {}, "MAX_DEPTH_LIMIT", id="depth-13"),
    pytest.param(DEPTH_13_IN_FRAGMENTS, {}, "MAX_DEPTH_LIMIT", id="depth-13-in-nested-fragments"),
    pytest.param(chain(60), {}, "MAX_DEPTH_LIMIT", id="depth-60"),
    pytest.param(aliases_at_root(51), {}, "MAX_ALIASES_LIMIT", id="51-aliases"),
    pytest.param(
        aliases_in_fragment(17, spreads=3), {}, "MAX_ALIASES_LIMIT",
        id="17-aliases-in-a-fragment-spread-3-times",
    ),
    pytest.param(
        aliases_in_inline_fragments(51), {}, "MAX_ALIASES_LIMIT",
        id="51-aliases-in-inline-fragments",
    ),
    pytest.param(operations(240), {}, "MAX_TOKENS_LIMIT", id="3120-tokens"),
    pytest.param(PAGE_OVER_CAP, {}, "BAD_USER_INPUT", id="first-501"),
    pytest.param(PAGE_OVER_CAP_NESTED, {}, "BAD_USER_INPUT", id="nested-first-501"),
    pytest.param(PAGE_FROM_VARIABLE, {"n": 501}, "BAD_USER_INPUT", id="first-501-from-variable"),
    pytest.param(PAGE_FROM_VARIABLE_DEFAULT, {}, "BAD_USER_INPUT", id="first-501-from-default"),
    pytest.param(NESTED_PAGES, {}, "COST_ESTIMATED_TOO_EXPENSIVE", id="nested-pages-of-500"),
    pytest.param(
        NESTED_PAGES_FROM_VARIABLE, {"n": 500}, "COST_ESTIMATED_TOO_EXPENSIVE",
        id="nested-pages-of-500-from-variable",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("query", "variables", "code"), OVER_THE_LIMITS)
async def test_operation_over_a_limit_is_refused_before_any_resolver(api, query, variables, code):
    api.reset()
    body = await api.post(query, variables, operationName="Q0" if "query Q0" in query else None)
    only_error(body, code)
    assert api.data_round_trips() == []


async def test_limit_errors_name_the_measure_and_the_limit(api):
    depth = only_error(await api.post(chain(13)), "MAX_DEPTH_LIMIT")
    assert (depth["extensions"]["measured"], depth["extensions"]["limit"]) == (13, 12)
    aliases = only_error(await api.post(aliases_in_fragment(17, 3)), "MAX_ALIASES_LIMIT")
    assert (aliases["extensions"]["measured"], aliases["extensions"]["limit"]) == (51, 50)
    page = only_error(await api.post(PAGE_FROM_VARIABLE, {"n": 501}), "BAD_USER_INPUT")
    assert page["extensions"]["limit"] == 500 and "501" in page["message"]
    for variables in ({}, {"n": 500}):
        query = NESTED_PAGES_FROM_VARIABLE if variables else NESTED_PAGES
        cost = only_error(await api.post(query, variables), "COST_ESTIMATED_TOO_EXPENSIVE")
        # 1 + 1 + 500 + 500 + 500 x 500: every appointment id of every patient of the page.
        assert cost["extensions"]["limit"] == 25_000
        assert cost["extensions"]["measured"] == 251_002


RAISED = [
    pytest.param(chain(13), {}, {"max_depth": 13}, id="depth-13-with-max_depth-13"),
    pytest.param(
        DEPTH_13_IN_FRAGMENTS, {}, {"max_depth": 13}, id="fragment-depth-13-with-max_depth-13"
    ),
    pytest.param(aliases_in_fragment(17, 3), {}, {"max_aliases": 51}, id="51-aliases-with-51"),
    pytest.param(operations(240), {}, {"max_tokens": 4000}, id="3120-tokens-with-4000"),
    pytest.param(PAGE_FROM_VARIABLE, {"n": 501}, {"page_size_max": 501}, id="501-with-max-501"),
    pytest.param(
        NESTED_PAGES_FROM_VARIABLE, {"n": 500}, {"max_cost": 300_000}, id="cost-with-300000"
    ),
]


@pytest.mark.parametrize(("query", "variables", "raised"), RAISED)
async def test_the_same_operation_runs_once_its_limit_is_raised(api, query, variables, raised):
    """The limit is what refused each operation above, and refusing it saved real work."""
    async with api.variant(**raised) as variant:
        variant.reset()
        data = await variant.data(
            query, variables, operationName="Q0" if "query Q0" in query else None
        )
        assert data
        assert variant.data_round_trips(), "the operation reads data once it runs"


async def test_mutations_over_the_alias_limit_leave_no_record(client, mongo_counter, sql_counter):
    def creates(count: int) -> str:
        fields = " ".join(f"p{n}: createPatient(input: $input) {{ id }}" for n in range(count))
        return f"mutation($input: CreatePatientInput!) {{ {fields} }}"

    count = "{ patients { totalCount } }"
    assert (await client.data(count))["patients"]["totalCount"] == 0
    mongo_counter.reset()
    sql_counter.reset()
    body = await client.post(creates(51), {"input": PATIENT_INPUT})
    only_error(body, "MAX_ALIASES_LIMIT")
    assert mongo_counter.commands == ["find"] and mongo_counter.collections == ["users"]
    assert sql_counter.statements == []
    assert (await client.data(count))["patients"]["totalCount"] == 0
    # Control: at the limit, every one of them is created.
    created = await client.data(creates(50), {"input": PATIENT_INPUT})
    assert len({patient["id"] for patient in created.values()}) == 50
    assert (await client.data(count))["patients"]["totalCount"] == 50


# --- Circular fragments and absurd nesting ----------------------------------------------------

CIRCULAR = [
    pytest.param(
        "{ patients(first: 1) { nodes { ...A } } }"
        " fragment A on Patient { id ...B } fragment B on Patient { name ...A }",
        id="A-B-A",
    ),
    pytest.param(
        "{ patients(first: 1) { nodes { ...A } } } fragment A on Patient { ...A }", id="A-A"
    ),
    pytest.param(
        "{ patients(first: 1) { nodes { ...A } } }"
        " fragment A on Patient { appointments { nodes { patient { ...A } } } }",
        id="A-through-fields-A",
    ),
    pytest.param(
        "{ ...Q } fragment Q on Query { patients(first: 1) { nodes { ...A } } }"
        " fragment A on Patient { ...B } fragment B on Patient { ...C }"
        " fragment C on Patient { ...A }",
        id="A-B-C-A-under-a-query-fragment",
    ),
]


@pytest.mark.parametrize("query", CIRCULAR)
async def test_circular_fragments_are_a_validation_error(api, query):
    api.reset()
    error = only_error(await api.post(query), "GRAPHQL_VALIDATION_FAILED")
    assert "Cannot spread fragment" in error["message"]
    assert api.data_round_trips() == []


NEST = 10_000


def fragment_hops(count: int, body: str, last: str, on: str = "Patient") -> str:
    """Fragments F0..F{count} spread one inside the next; F{count} holds `last`."""
    hops = "".join(f" fragment F{n} on {on} {{ {body % f'...F{n + 1}'} }}" for n in range(count))
    return hops + f" fragment F{count} on {on} {{ {last} }}"


ABSURD = (
    [
        pytest.param("{" + "a{" * NEST + "b" + "}" * (NEST + 1), id="unknown-fields-10000-deep"),
        pytest.param(
            "{ patients { nodes { appointments { nodes { patient {" * (NEST // 5)
            + " id"
            + " } } } } }" * (NEST // 5),
            id="real-fields-10000-deep",
        ),
        pytest.param(
            "{ ... on Query {" * NEST + " __typename" + " }" * (NEST + 1),
            id="inline-fragments-10000-deep",
        ),
        pytest.param(
            "{ patients(name: " + "[" * NEST + '"x"' + "]" * NEST + ") { totalCount } }",
            id="list-value-10000-deep",
        ),
    ]
    + [
        pytest.param(
            "{ patients { ...F0 } }"
            + fragment_hops(hops, "%s", "totalCount", on="PatientConnection"),
            id=f"{hops}-fragments-spread-in-a-chain",
        )
        for hops in (250, 360, 5000)
    ]
    + [
        pytest.param(
            "{ patients { nodes { ...F0 } } }"
            + fragment_hops(hops, "appointments { nodes { patient { %s } } }", "id"),
            id=f"{hops}-fragments-3-fields-deep-each",
        )
        for hops in (10, 20, 30, 40, 60, 170, 2000)
    ]
)


@pytest.mark.parametrize("query", ABSURD)
@pytest.mark.parametrize("max_tokens", [None, 10**6], ids=["default-tokens", "tokens-raised"])
async def test_absurd_documents_within_the_body_cap_are_client_errors(api, query, max_tokens):
    """Within the body cap, whatever the token limit: a 4xx or a GraphQL error, never a 500."""
    request = {"query": query, "operationName": "Q0" if "query Q0" in query else None}
    assert len(json.dumps(request)) < api.settings.max_body_bytes
    async with _maybe_variant(api, max_tokens) as variant:
        variant.reset()
        response = await variant.http.post("/graphql", json=request)
        assert response.status_code < 500, response.text[:500]
        body = response.json()
        assert body["errors"] and body.get("data") is None, body
        codes = {error["extensions"]["code"] for error in body["errors"]}
        assert codes <= {
            "MAX_TOKENS_LIMIT",
            "MAX_DEPTH_LIMIT",
            "COST_ESTIMATED_TOO_EXPENSIVE",
            "GRAPHQL_PARSE_FAILED",
            "GRAPHQL_VALIDATION_FAILED",
            "BAD_REQUEST",
        }, body["errors"]
        assert "Internal server error" not in response.text
        assert variant.data_round_trips() == []


@pytest.mark.parametrize("hops", [100, 150, 190])
async def test_long_chain_of_fragment_spreads_runs_without_a_recursion_error(api, hops):
    """Valid and cheap (one totalCount): answered, or refused by validation, never a 500."""
    query = "{ patients { ...F0 } }" + fragment_hops(
        hops, "%s", "totalCount", on="PatientConnection"
    )
    response = await api.http.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text[:300]
    body = response.json()
    if "errors" in body:
        assert [e["extensions"]["code"] for e in body["errors"]] == ["GRAPHQL_VALIDATION_FAILED"]
    else:
        assert body["data"] == {"patients": {"totalCount": 1}}


async def test_huge_documents_over_the_token_limit_say_so(api):
    for query in ("{ " + "__typename " * 23_000 + "}", operations(5000)):
        api.reset()
        body = await api.post(query, operationName="Q0")
        only_error(body, "MAX_TOKENS_LIMIT")
        assert api.data_round_trips() == []


# --- Fragment bombs ----------------------------------------------------------------------


def fragment_bomb(levels: int, width: int, root: str, on: str, leaf: str) -> str:
    """Each fragment spreads the next `width` times: width^levels fields in a few bytes."""
    return (
        root
        + "".join(
            f" fragment F{n} on {on} {{ {' '.join([f'...F{n + 1}'] * width)} }}"
            for n in range(levels)
        )
        + f" fragment F{levels} on {on} {{ {leaf} }}"
    )


BOMBS = [
    pytest.param(20, 2, "{ ...F0 }", "Query", "__typename", id="2^20-at-the-root"),
    pytest.param(10, 10, "{ ...F0 }", "Query", "__typename", id="10^10-at-the-root"),
    pytest.param(
        10, 10, "{ patients(first: 0) { nodes { ...F0 } } }", "Patient", "id",
        id="10^10-under-an-empty-page",
    ),
    pytest.param(
        10, 10, "{ patients(first: 1) { nodes { ...F0 } } }", "Patient", "id",
        id="10^10-under-a-page-of-1",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("levels", "width", "root", "on", "leaf"), BOMBS)
async def test_fragment_bomb_is_refused_at_once(api, levels, width, root, on, leaf):
    """A few hundred bytes that expand to billions of fields: refused in milliseconds."""
    api.reset()
    started = time.perf_counter()
    body = await api.post(fragment_bomb(levels, width, root, on, leaf))
    elapsed = time.perf_counter() - started
    error = only_error(body, "COST_ESTIMATED_TOO_EXPENSIVE")
    assert error["extensions"]["measured"] > error["extensions"]["limit"]
    assert api.data_round_trips() == []
    assert elapsed < 2, f"measuring the operation took {elapsed:.1f} s"


@pytest.mark.parametrize("max_cost", [None, 2**62], ids=["default-budget", "budget-2^62"])
async def test_astronomical_cost_estimate_is_reported_not_a_500(api, max_cost):
    """Nested default pages multiply: 100^45 does not fit the 64 bits orjson takes. The
    walk stops once over budget; a budget raised past 2^53 meets the estimate's ceiling."""
    query = "{ patients { nodes { ...F0 } } }" + fragment_hops(
        15, "appointments { nodes { patient { %s } } }", "id"
    )
    async with _maybe_variant(api, None, max_cost=max_cost) as variant:
        async with signed_in(variant.app, raise_app_exceptions=False) as anonymous:
            response = await anonymous.http.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text[:300]
    errors = {e["extensions"]["code"]: e["extensions"] for e in response.json()["errors"]}
    if max_cost is None:
        assert errors.keys() <= {"MAX_DEPTH_LIMIT", "COST_ESTIMATED_TOO_EXPENSIVE"}, errors
        assert 25_000 < errors["COST_ESTIMATED_TOO_EXPENSIVE"]["measured"] <= 2**53 - 1
    else:
        assert errors.keys() == {"MAX_DEPTH_LIMIT"}, errors
