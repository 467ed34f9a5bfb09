"""Benchmark of the nested appointments query: round trips, latency and throughput.

    .venv/bin/python -m benchmarks.nested_query [--size small|default|large] [--seconds 3]

Starts its own embedded MongoDB and SQLite billing file in a temporary directory, loads
the demo data, creates an ADMIN account and an access token for it (the API requires
authentication; every request sends `Authorization: Bearer <token>`), then measures the
reference query

    appointments(first: $n) { nodes { patient { name } doctor { name } bill { totalCost } } }

1. database round trips for one request and sequential latency, for several page sizes;
2. throughput at N=100 against a hand-written Starlette endpoint doing the same fetch
   with the same batching (the cost of the GraphQL layer), in-process over ASGI; the
   raw endpoint also authenticates the same way (JWT decode and one read of the
   caller's account by _id, as auth/authenticate.py does), so authentication costs
   both sides the same and the ratio still isolates the GraphQL layer;
3. the same comparison through uvicorn on loopback.

What the raw endpoint is: it runs the SAME appointments query as the API (no filter,
sorted by start and _id, the start_order index). On the embedded server that index walk
reads all 4,000 index candidates before the limit applies, on both sides, so this ratio
isolates the GraphQL layer but says nothing about whether the query is index-served.
For that, see benchmarks/speed.py (the README query, a doctor's page read from its
compound index in a window of its sort key, against `me` and against a hand-written
endpoint making the same store calls) and tests/test_query_shapes.py.

Round trips per request: 4 for the data plus 1 for authentication (the `find` on
`users` that checks the token is not revoked), 5 in all.

Exit status: 0 on success; 1 when the round-trip count grows with N or exceeds the
target (an N+1 regression); 2 when the two endpoints disagree or a request fails. The
throughput ratio is reported, not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from time import perf_counter

import httpx
import orjson
import sqlalchemy as sa
import uvicorn
from bson import ObjectId
from bson.errors import InvalidId
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from auth.roles import Role
from auth.tokens import ACCESS, InvalidToken
from benchmarks.harness import (
    BenchmarkError,
    Throughput,
    embedded_app,
    measure_throughput,
    percentile,
    run_benchmark,
)
from datasources.billing_tables import bills
from demo.generator import SIZES, load_demo_data
from runtime.services import Services
from tests.support import MongoCommandCounter, SqlStatementCounter, issue_token

REFERENCE_QUERY = (
    "query Ref($n: Int!) { appointments(first: $n) "
    "{ nodes { patient { name } doctor { name } bill { totalCost } } } }"
)
PAGE_SIZES = (5, 10, 100, 200, 500)
THROUGHPUT_PAGE_SIZE = 100
CONCURRENCY = 8
MAX_THROUGHPUT_REQUESTS = 20_000
LATENCY_MAX_REQUESTS = 30
LATENCY_MAX_SECONDS = 5.0
WARMUP_REQUESTS = 20
WARMUP_MAX_SECONDS = 2.0
# One find on appointments, one $in find each on patients and doctors, one SQL IN query.
DATA_ROUND_TRIP_TARGET = 4
# One find on users by _id: the token's account still exists, is enabled, same version.
AUTH_ROUND_TRIP_TARGET = 1
ROUND_TRIP_TARGET = DATA_ROUND_TRIP_TARGET + AUTH_ROUND_TRIP_TARGET
RATIO_TARGET = 15  # graphql throughput must be at least 1/RATIO_TARGET of the raw one
# Upper bound on any single measurement, so a hung request cannot hang the benchmark.
HANG_GUARD_SECONDS = 60.0


# --- environment ---------------------------------------------------------------------


@dataclass
class Bench:
    app: Starlette
    raw_app: Starlette
    services: Services
    mongo_pid: int
    mongo_counter: MongoCommandCounter
    sql_counter: SqlStatementCounter
    demo_counts: dict[str, int]
    # An ADMIN access token (second factor verified), sent with every request.
    token: str


@asynccontextmanager
async def bench_environment(size: str) -> AsyncIterator[Bench]:
    """Everything the benchmark needs; torn down in reverse order even on error."""
    mongo_counter = MongoCommandCounter()
    async with embedded_app(
        temp_prefix="caregraph-bench-",
        database="caregraph_bench",
        mongo_event_listeners=[mongo_counter],
    ) as embedded:
        services = embedded.services
        sql_counter = SqlStatementCounter()
        sql_counter.attach(services.engine)
        print(f"loading demo data (size={size}) ...", flush=True)
        demo_counts = await load_demo_data(services, seed=42, size=size, progress=False)
        token = await issue_token(services, Role.ADMIN)
        yield Bench(
            app=embedded.app,
            raw_app=build_raw_app(services),
            services=services,
            mongo_pid=embedded.mongo_pid,
            mongo_counter=mongo_counter,
            sql_counter=sql_counter,
            demo_counts=demo_counts,
            token=token,
        )


# --- the hand-written endpoint -------------------------------------------------------


def person_name(document: dict) -> str:
    return f"{document['givenName']} {document['familyName']}"


def money_text(cents: int) -> str:
    # Integer arithmetic gives the same text as the API's quantized Decimal.
    return f"{cents // 100}.{cents % 100:02d}"


async def fetch_by_ids(collection, ids: set) -> dict:
    # One more than the possible matches, as the store's get_many does: the server
    # closes the cursor in its first reply, so no getMore round trip follows.
    cursor = collection.find({"_id": {"$in": list(ids)}}).batch_size(len(ids) + 1)
    return {document["_id"]: document async for document in cursor}


async def fetch_bills(services: Services, appointment_ids: set[str]) -> dict[str, dict]:
    statement = sa.select(bills).where(bills.c.appointment_id.in_(appointment_ids))
    async with services.engine.connect() as connection:
        result = await connection.execute(statement)
        return {row["appointment_id"]: dict(row) for row in result.mappings()}


async def raw_page(services: Services, n: int) -> dict:
    """The reference query's data, fetched the way the dataloaders batch it.

    Whole documents and rows, as the GraphQL stores fetch them, so the comparison
    measures the GraphQL layer rather than a leaner projection.
    """
    appointments_cursor = (
        services.db["appointments"].find({}).sort([("start", 1), ("_id", 1)]).limit(n)
    )
    appointments = await appointments_cursor.batch_size(n + 1).to_list()
    # The three lookups are independent; the dataloaders also run them concurrently.
    patients, doctors, bills_by_appointment = await asyncio.gather(
        fetch_by_ids(services.db["patients"], {a["patientId"] for a in appointments}),
        fetch_by_ids(services.db["doctors"], {a["doctorId"] for a in appointments}),
        fetch_bills(services, {str(a["_id"]) for a in appointments}),
    )
    nodes = []
    for appointment in appointments:
        bill = bills_by_appointment.get(str(appointment["_id"]))
        nodes.append(
            {
                "patient": {"name": person_name(patients[appointment["patientId"]])},
                "doctor": {"name": person_name(doctors[appointment["doctorId"]])},
                "bill": {"totalCost": money_text(bill["total_cost_cents"])} if bill else None,
            }
        )
    return {"data": {"appointments": {"nodes": nodes}}}


# The account fields auth/authenticate.py reads to build the principal.
_ACCOUNT_STATE = {"role": 1, "disabled": 1, "tokenVersion": 1, "patientId": 1, "doctorId": 1}


async def raw_authenticate(services: Services, authorization: str | None) -> bool:
    """What the GraphQL context does before any resolver runs, by hand: verify the
    bearer token, then one indexed read of the account, so revocation is honoured.
    The raw endpoint pays the same authentication cost as the GraphQL one."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    try:
        claims = services.tokens.decode(token.strip(), expected_type=ACCESS)
        user_id = ObjectId(claims["sub"])
    except (InvalidToken, InvalidId, TypeError):
        return False
    user = await services.db["users"].find_one({"_id": user_id}, projection=_ACCOUNT_STATE)
    if user is None or user["disabled"] or user["tokenVersion"] != claims.get("ver"):
        return False
    # Every appointment, patient and bill: only a second-factor-verified ADMIN sees all.
    return user["role"] == Role.ADMIN.value and bool(claims.get("mfa"))


def build_raw_app(services: Services) -> Starlette:
    async def appointments(request: Request) -> Response:
        if not await raw_authenticate(services, request.headers.get("authorization")):
            return Response(b'{"error":"unauthenticated"}', 401, media_type="application/json")
        n = int(request.query_params["n"])
        body = orjson.dumps(await raw_page(services, n))
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route("/appointments", appointments, methods=["GET"])])


# --- requests --------------------------------------------------------------------------


def graphql_body(n: int) -> bytes:
    return orjson.dumps({"query": REFERENCE_QUERY, "variables": {"n": n}})


def graphql_sender(http: httpx.AsyncClient, n: int) -> Callable[[], Awaitable[bytes]]:
    """One reference request; the body is encoded once so the client costs little."""
    return graphql_body_sender(http, graphql_body(n))


def graphql_body_sender(
    http: httpx.AsyncClient, body: bytes, what: str = "graphql"
) -> Callable[[], Awaitable[bytes]]:
    """POSTs this JSON body to /graphql; a response with errors fails the benchmark."""
    headers = {"content-type": "application/json"}

    async def send() -> bytes:
        response = await http.post("/graphql", content=body, headers=headers)
        # A byte search, not a parse: parsing would add client CPU to every measurement.
        if response.status_code != 200 or b'"errors"' in response.content:
            raise BenchmarkError(f"{what} request failed: {response.text[:500]}")
        return response.content

    return send


def raw_sender(http: httpx.AsyncClient, n: int) -> Callable[[], Awaitable[bytes]]:
    async def send() -> bytes:
        response = await http.get("/appointments", params={"n": n})
        if response.status_code != 200:
            raise BenchmarkError(f"raw request failed: {response.text[:500]}")
        return response.content

    return send


def auth_headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def asgi_client(app: Starlette, token: str) -> httpx.AsyncClient:
    """A client whose every request carries the bearer token."""
    # trust_env=False: no proxy or netrc from the environment in a measurement.
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://bench",
        trust_env=False,
        headers=auth_headers(token),
    )


async def check_authentication_enforced(graphql: httpx.AsyncClient, raw: httpx.AsyncClient) -> None:
    """Without the token both endpoints must refuse: otherwise one of them skips the
    authentication work the comparison assumes both do."""
    response = await graphql.post(
        "/graphql",
        content=graphql_body(5),
        headers={"content-type": "application/json", "authorization": ""},
    )
    if b"UNAUTHENTICATED" not in response.content:
        raise BenchmarkError(f"graphql answered without a token: {response.text[:300]}")
    response = await raw.get("/appointments", params={"n": 5}, headers={"authorization": ""})
    if response.status_code != 401:
        raise BenchmarkError(f"raw endpoint answered without a token: {response.status_code}")


# --- round trips and latency --------------------------------------------------------


@dataclass
class RoundTrips:
    mongo: int  # for the data
    sql: int  # for the data
    auth: int  # the read of the caller's account (token revocation check)

    @property
    def data(self) -> int:
        return self.mongo + self.sql

    @property
    def total(self) -> int:
        return self.data + self.auth

    def text(self) -> str:
        return (
            f"{self.mongo} mongo + {self.sql} sql (data) + {self.auth} auth "
            f"= {self.total} round trips"
        )


@dataclass
class Latency:
    requests: int
    median_ms: float
    p95_ms: float


async def count_round_trips(bench: Bench, send: Callable[[], Awaitable[bytes]]) -> RoundTrips:
    bench.mongo_counter.reset()
    bench.sql_counter.reset()
    await send()
    counter = bench.mongo_counter
    commands = list(zip(counter.commands, counter.collections, strict=True))
    auth = sum(1 for command, collection in commands if (command, collection) == ("find", "users"))
    return RoundTrips(mongo=len(commands) - auth, sql=len(bench.sql_counter.statements), auth=auth)


async def check_raw_batching(
    bench: Bench, raw: httpx.AsyncClient, rows: dict[int, tuple[RoundTrips, Latency]]
) -> None:
    """The throughput comparison is only fair if the raw endpoint batches the same way."""
    n = THROUGHPUT_PAGE_SIZE
    raw_trips = await count_round_trips(bench, raw_sender(raw, n))
    print(f"raw endpoint at N={n}: {raw_trips.text()}")
    if n in rows and raw_trips != rows[n][0]:
        raise BenchmarkError(f"raw endpoint makes {raw_trips}, graphql {rows[n][0]}")


async def measure_latency(send: Callable[[], Awaitable[bytes]]) -> Latency:
    durations: list[float] = []
    deadline = perf_counter() + LATENCY_MAX_SECONDS
    while len(durations) < LATENCY_MAX_REQUESTS and perf_counter() < deadline:
        started = perf_counter()
        await send()
        durations.append((perf_counter() - started) * 1000)
    durations.sort()
    return Latency(len(durations), statistics.median(durations), percentile(durations, 0.95))


# --- equivalence and throughput --------------------------------------------------------


def first_difference(graphql_nodes: list, raw_nodes: list) -> str:
    if len(graphql_nodes) != len(raw_nodes):
        return f"{len(graphql_nodes)} graphql nodes vs {len(raw_nodes)} raw nodes"
    for index, (graphql_node, raw_node) in enumerate(zip(graphql_nodes, raw_nodes, strict=True)):
        if graphql_node != raw_node:
            return f"node {index}: graphql {graphql_node} vs raw {raw_node}"
    return "no node differs (the envelopes do)"


async def verify_same_data(graphql: httpx.AsyncClient, raw: httpx.AsyncClient, n: int) -> None:
    """Fail loudly unless both endpoints answer with identical data for this N."""
    graphql_data = orjson.loads(await graphql_sender(graphql, n)())["data"]
    raw_data = orjson.loads(await raw_sender(raw, n)())["data"]
    nodes = graphql_data["appointments"]["nodes"]
    if len(nodes) != n:
        raise BenchmarkError(f"asked for {n} appointments, got {len(nodes)}: demo data too small")
    if graphql_data != raw_data:
        difference = first_difference(nodes, raw_data["appointments"]["nodes"])
        raise BenchmarkError(f"graphql and raw answers differ for N={n}: {difference}")


async def measure_throughput_at_n(
    send: Callable[[], Awaitable[bytes]], seconds: float, database_pid: int
) -> Throughput:
    """For `seconds`, CONCURRENCY workers, at most MAX_THROUGHPUT_REQUESTS requests."""
    return await measure_throughput(
        send,
        seconds,
        database_pid,
        concurrency=CONCURRENCY,
        max_requests=MAX_THROUGHPUT_REQUESTS,
        warmup_requests=WARMUP_REQUESTS,
        warmup_max_seconds=WARMUP_MAX_SECONDS,
        hang_guard_seconds=HANG_GUARD_SECONDS,
    )


@dataclass
class Comparison:
    transport: str
    graphql: Throughput
    raw: Throughput

    @property
    def raw_per_graphql(self) -> float:
        return self.raw.per_second / self.graphql.per_second


async def compare(
    bench: Bench,
    transport: str,
    graphql: httpx.AsyncClient,
    raw: httpx.AsyncClient,
    seconds: float,
) -> Comparison:
    await verify_same_data(graphql, raw, THROUGHPUT_PAGE_SIZE)
    graphql_send = graphql_sender(graphql, THROUGHPUT_PAGE_SIZE)
    raw_send = raw_sender(raw, THROUGHPUT_PAGE_SIZE)
    return Comparison(
        transport=transport,
        graphql=await measure_throughput_at_n(graphql_send, seconds, bench.mongo_pid),
        raw=await measure_throughput_at_n(raw_send, seconds, bench.mongo_pid),
    )


# --- uvicorn on loopback ---------------------------------------------------------------


def loopback_socket() -> socket.socket:
    # Bound here and handed to uvicorn: the port is ours, no pick-then-bind race.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class InProcessServer(uvicorn.Server):
    """uvicorn without its signal handlers: Ctrl-C must stop the whole benchmark (and
    its cleanup), not just quietly end this server mid-measurement."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def uvicorn_server(app: Starlette) -> AsyncIterator[str]:
    """Serve `app` in this event loop on a free loopback port; yield its base URL.

    lifespan="off": the services are already open, shared with the in-process runs.
    """
    sock = loopback_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_level="warning", access_log=False
    )
    server = InProcessServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = perf_counter() + 10
        while not server.started:
            if task.done():
                raise BenchmarkError("uvicorn exited while starting") from task.exception()
            if perf_counter() > deadline:
                raise BenchmarkError("uvicorn did not start within 10 s")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()


def loopback_client(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        trust_env=False,
        timeout=10,
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY),
        headers=auth_headers(token),
    )


async def compare_over_uvicorn(bench: Bench, seconds: float) -> Comparison:
    async with (
        uvicorn_server(bench.app) as graphql_url,
        uvicorn_server(bench.raw_app) as raw_url,
        loopback_client(graphql_url, bench.token) as graphql,
        loopback_client(raw_url, bench.token) as raw,
    ):
        return await compare(bench, "uvicorn loopback", graphql, raw, seconds)


# --- report ----------------------------------------------------------------------------


def print_round_trip_table(rows: dict[int, tuple[RoundTrips, Latency]]) -> None:
    print("\nRound trips for one request, and latency of sequential requests (in-process ASGI)")
    print("  data: mongo + sql for the query; auth: the find on users that checks the token")
    print(
        f"{'N':>5} {'mongo':>6} {'sql':>4} {'data':>5} {'auth':>5} {'total':>6} "
        f"{'requests':>9} {'median ms':>10} {'p95 ms':>8}"
    )
    for n, (trips, latency) in rows.items():
        print(
            f"{n:>5} {trips.mongo:>6} {trips.sql:>4} {trips.data:>5} {trips.auth:>5} "
            f"{trips.total:>6} {latency.requests:>9} {latency.median_ms:>10.1f} "
            f"{latency.p95_ms:>8.1f}"
        )


def ratio_text(comparison: Comparison) -> str:
    met = "met" if comparison.raw_per_graphql <= RATIO_TARGET else "NOT met"
    return (
        f"ratio graphql/raw = 1/{comparison.raw_per_graphql:.1f} "
        f"(target >= 1/{RATIO_TARGET}: {met})"
    )


def cpu_text(comparison: Comparison) -> str:
    """The GraphQL layer's own cost, and which process limits throughput."""
    graphql, raw = comparison.graphql, comparison.raw
    text = (
        f"app CPU/req graphql/raw = {graphql.app_cpu_ms:.1f}/{raw.app_cpu_ms:.1f} ms "
        f"(x{graphql.app_cpu_ms / raw.app_cpu_ms:.1f})"
    )
    if graphql.database_cpu_ms is not None:
        bound = "database" if graphql.database_cpu_ms > graphql.app_cpu_ms else "app"
        text += f"; db CPU {graphql.database_cpu_ms:.1f} ms/req: {bound}-bound"
    return text


def print_throughput_table(comparisons: list[Comparison], seconds: float) -> None:
    print(
        f"\nThroughput at N={THROUGHPUT_PAGE_SIZE}, {CONCURRENCY} concurrent clients, "
        f"at most {seconds:g} s or {MAX_THROUGHPUT_REQUESTS} requests per row"
    )
    print(
        f"{'transport':<18} {'endpoint':<8} {'requests':>9} {'seconds':>8} {'req/s':>8} "
        f"{'app CPU ms/req':>15} {'db CPU ms/req':>14}"
    )
    for comparison in comparisons:
        for endpoint, result in (("graphql", comparison.graphql), ("raw", comparison.raw)):
            database_cpu = result.database_cpu_ms
            database_text = "n/a" if database_cpu is None else f"{database_cpu:.1f}"
            print(
                f"{comparison.transport:<18} {endpoint:<8} {result.requests:>9} "
                f"{result.seconds:>8.2f} {result.per_second:>8.1f} "
                f"{result.app_cpu_ms:>15.1f} {database_text:>14}"
            )
    print(
        "  app CPU: this process (benchmark client, app, drivers; uvicorn too when used);\n"
        "  db CPU: the secantusd-py child. With 2 cores, the busier of the two bounds req/s.\n"
        "  Both endpoints authenticate every request the same way (JWT decode + one read of\n"
        "  the account by _id), so the ratio isolates the GraphQL layer."
    )


def round_trips_hold(rows: dict[int, tuple[RoundTrips, Latency]]) -> bool:
    smallest, largest = rows[min(rows)][0], rows[max(rows)][0]
    return (
        smallest.total == largest.total <= ROUND_TRIP_TARGET
        and largest.data <= DATA_ROUND_TRIP_TARGET
        and largest.auth <= AUTH_ROUND_TRIP_TARGET
    )


def print_summary(
    rows: dict[int, tuple[RoundTrips, Latency]],
    comparisons: list[Comparison],
    uvicorn_note: str | None,
) -> None:
    smallest, largest = min(rows), max(rows)
    trips_small, trips_large = rows[smallest][0], rows[largest][0]
    print("\nSummary")
    print(
        f"  round trips per request: N={smallest} -> {trips_small.total}, N={largest} -> "
        f"{trips_large.total} (equal: {'yes' if trips_small.total == trips_large.total else 'NO'}, "
        f"target <= {ROUND_TRIP_TARGET} = {DATA_ROUND_TRIP_TARGET} data + "
        f"{AUTH_ROUND_TRIP_TARGET} auth: {'met' if round_trips_hold(rows) else 'NOT met'}); "
        f"at N={largest}: {trips_large.data} data + {trips_large.auth} auth"
    )
    for comparison in comparisons:
        print(f"  {comparison.transport:<17} {ratio_text(comparison)}")
        print(f"  {'':<17} {cpu_text(comparison)}")
    if uvicorn_note:
        print(f"  uvicorn loopback  {uvicorn_note}")


# --- main ------------------------------------------------------------------------------


async def run(size: str, seconds: float) -> int:
    async with bench_environment(size) as bench:
        print(
            f"CareGraph nested query benchmark: size={size} "
            f"({bench.demo_counts['appointments']} appointments, "
            f"{bench.demo_counts['patients']} patients, {bench.demo_counts['doctors']} doctors, "
            f"{bench.demo_counts['bills']} bills), seed 42"
        )
        print(f"query: {REFERENCE_QUERY}")
        page_sizes = [n for n in PAGE_SIZES if n <= bench.demo_counts["appointments"]]
        print("every request sends Authorization: Bearer <ADMIN access token>")
        async with (
            asgi_client(bench.app, bench.token) as graphql,
            asgi_client(bench.raw_app, bench.token) as raw,
        ):
            await check_authentication_enforced(graphql, raw)
            for n in page_sizes:
                await verify_same_data(graphql, raw, n)
            rows: dict[int, tuple[RoundTrips, Latency]] = {}
            for n in page_sizes:
                send = graphql_sender(graphql, n)
                rows[n] = (await count_round_trips(bench, send), await measure_latency(send))
            print_round_trip_table(rows)
            await check_raw_batching(bench, raw, rows)
            comparisons = [await compare(bench, "in-process ASGI", graphql, raw, seconds)]
        uvicorn_note = None
        try:
            comparisons.append(await compare_over_uvicorn(bench, seconds))
        except (OSError, BenchmarkError, TimeoutError, httpx.HTTPError) as error:
            uvicorn_note = f"skipped: {type(error).__name__}: {error}"
        print_throughput_table(comparisons, seconds)
        print_summary(rows, comparisons, uvicorn_note)
        return 0 if round_trips_hold(rows) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="time budget of each throughput measurement"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(run(args.size, args.seconds))


if __name__ == "__main__":
    sys.exit(main())
