"""Benchmark of the reference query as a trusted document, as plain text and as an APQ
hash, against the raw Starlette endpoint: throughput, latency and CPU per request.

    .venv/bin/python -m benchmarks.persisted_documents [--size small|default|large]
        [--rounds 3] [--requests 24]

Uses nested_query.py's environment (its own embedded MongoDB, SQLite file, demo data,
an ADMIN token on every request) and its raw endpoint, which fetches the same data
with the same batching. The reference query is queries/BenchmarkAppointments.graphql
(nested_query.py's selection: appointments { nodes { patient doctor bill } }), N=100:

  trusted      {"documentId": "sha256:<hex of the file>"}: the AST prepared at start,
               no parse, no validation
  plain text   the same operation as query text, without the file's comment line, so
               not the file's bytes: parse and validation through the LRU caches
  file text    the file's exact bytes as query text: the server recognises them as
               the trusted document (Manifest.by_body) and skips both steps as well
  APQ hash     extensions.persistedQuery with the plain text's hash, after one
               registration: the text from the APQ store (in-process Redis stand-in
               here), then the LRU caches, as for plain text
  raw          nested_query.py's hand-written endpoint

Each path is checked once before it is measured: the same data as the raw endpoint,
and prepare_document called (plain, APQ) or not (trusted, file text). Throughput: the
same number of requests per path at the same concurrency, in rounds whose order
rotates, so drift in machine load spreads over every path; each round is bounded in
time too. Then the same through uvicorn on loopback, and a microbenchmark of what the
trusted path skips: parse + validate of this document uncached, through the LRU
caches, and the trusted lookup.

Exit status: 0 on success; 2 when a path answers wrongly, fails or takes another
path than intended. The ratios are reported, not enforced.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from time import perf_counter

import httpx
import orjson
from graphql import OperationDefinitionNode, parse
from starlette.routing import Route

from benchmarks.harness import (
    BenchmarkError,
    CpuClock,
    Throughput,
    load_text,
    measure_throughput,
    run_benchmark,
)
from benchmarks.nested_query import (
    CONCURRENCY,
    HANG_GUARD_SECONDS,
    RATIO_TARGET,
    THROUGHPUT_PAGE_SIZE,
    Bench,
    Latency,
    asgi_client,
    bench_environment,
    first_difference,
    graphql_body_sender,
    loopback_client,
    measure_latency,
    raw_sender,
    uvicorn_server,
)
from demo.generator import SIZES
from persisted.manifest import DOCUMENT_ID_PREFIX, Manifest, sha256_hex
from schema.documents import prepare_document
from schema.limits import Limits, limit_errors, measure
from web.graphql_endpoint import GraphQLEndpoint

DOCUMENT_PATH = Path(__file__).resolve().parent.parent / "queries" / "BenchmarkAppointments.graphql"
ROUNDS = 3
REQUESTS_PER_ROUND = 20
# Bounds one path's share of a round; at the measured 6-8 req/s, 20 requests take ~3 s.
ROUND_MAX_SECONDS = 20.0
WARMUP_REQUESTS = 3
MICRO_MAX_SECONDS = 1.0
MICRO_MAX_CALLS = 5_000


# --- the reference document and its request forms -------------------------------------


@dataclass(frozen=True)
class ReferenceDocument:
    file_text: str  # the trusted document: exactly the file's text
    plain_text: str  # the same operation without the comment line: not the file's bytes

    @property
    def document_id(self) -> str:
        return DOCUMENT_ID_PREFIX + sha256_hex(self.file_text)

    @property
    def plain_hash(self) -> str:
        return sha256_hex(self.plain_text)

    @classmethod
    def load(cls) -> ReferenceDocument:
        file_text = DOCUMENT_PATH.read_text(encoding="utf-8")
        comment, _, operation = file_text.partition("\n")
        if not comment.startswith("#"):
            raise BenchmarkError(f"{DOCUMENT_PATH.name} must start with a # comment")
        return cls(file_text=file_text, plain_text=operation)


@dataclass(frozen=True)
class RequestForm:
    """One way of asking for the reference query."""

    name: str
    payload: dict | None  # the JSON body; None for the raw endpoint
    prepares: bool  # whether the server looks the text up in its parse/validate cache


def request_forms(document: ReferenceDocument) -> list[RequestForm]:
    variables = {"n": THROUGHPUT_PAGE_SIZE}
    apq = {"persistedQuery": {"version": 1, "sha256Hash": document.plain_hash}}
    return [
        RequestForm("trusted", {"documentId": document.document_id, "variables": variables}, False),
        RequestForm("plain text", {"query": document.plain_text, "variables": variables}, True),
        RequestForm("file text", {"query": document.file_text, "variables": variables}, False),
        RequestForm("APQ hash", {"extensions": apq, "variables": variables}, True),
        RequestForm("raw", None, False),
    ]


Send = Callable[[], Awaitable[bytes]]


def senders(
    forms: list[RequestForm], graphql: httpx.AsyncClient, raw: httpx.AsyncClient
) -> dict[str, Send]:
    return {
        form.name: (
            raw_sender(raw, THROUGHPUT_PAGE_SIZE)
            if form.payload is None
            else graphql_body_sender(graphql, orjson.dumps(form.payload), form.name)
        )
        for form in forms
    }


# --- checks ------------------------------------------------------------------------------


async def register_apq(graphql: httpx.AsyncClient, document: ReferenceDocument) -> None:
    """The one registration (hash + text) after which the hash alone is enough."""
    payload = {
        "query": document.plain_text,
        "variables": {"n": THROUGHPUT_PAGE_SIZE},
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": document.plain_hash}},
    }
    await graphql_body_sender(graphql, orjson.dumps(payload), "APQ registration")()


async def check_trusted_needs_a_token(
    graphql: httpx.AsyncClient, document: ReferenceDocument
) -> None:
    """A trusted document skips parse and validation, never authentication."""
    body = orjson.dumps({"documentId": document.document_id, "variables": {"n": 5}})
    response = await graphql.post(
        "/graphql", content=body, headers={"content-type": "application/json", "authorization": ""}
    )
    if b"UNAUTHENTICATED" not in response.content:
        raise BenchmarkError(f"trusted document answered without a token: {response.text[:300]}")


def prepare_calls() -> int:
    info = prepare_document.cache_info()
    return info.hits + info.misses


async def check_forms(forms: list[RequestForm], sends: dict[str, Send]) -> None:
    """Every path returns the raw endpoint's data, and takes the path it is meant to."""
    raw_data = orjson.loads(await sends["raw"]())["data"]
    raw_nodes = raw_data["appointments"]["nodes"]
    if len(raw_nodes) != THROUGHPUT_PAGE_SIZE:
        raise BenchmarkError(f"asked for {THROUGHPUT_PAGE_SIZE} appointments, got {len(raw_nodes)}")
    for form in forms:
        if form.payload is None:
            continue
        before = prepare_calls()
        data = orjson.loads(await sends[form.name]())["data"]
        prepared = prepare_calls() > before
        if data != raw_data:
            difference = first_difference(data["appointments"]["nodes"], raw_nodes)
            raise BenchmarkError(f"{form.name} and raw answers differ: {difference}")
        if prepared != form.prepares:
            raise BenchmarkError(
                f"{form.name}: the server {'looked' if prepared else 'did not look'} "
                "the text up in the parse/validate cache"
            )


# --- measurements ----------------------------------------------------------------------


def combined(results: list[Throughput]) -> Throughput:
    databases = [r.cpu.database for r in results]
    return Throughput(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        cpu=CpuClock(
            app=sum(r.cpu.app for r in results),
            database=None if None in databases else sum(d for d in databases if d is not None),
        ),
        latencies_ms=sorted(latency for r in results for latency in r.latencies_ms),
    )


@dataclass
class PathResult:
    rounds: list[Throughput]
    sequential: Latency | None = None

    @property
    def throughput(self) -> Throughput:
        """All rounds together."""
        return combined(self.rounds)

    def spread(self, value: Callable[[Throughput], float], digits: int = 1) -> str:
        """The lowest and highest round: how much of a difference is noise."""
        values = [value(r) for r in self.rounds]
        return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def rotated(names: list[str], by: int) -> Iterator[str]:
    by %= len(names)
    yield from names[by:] + names[:by]


async def measure_paths(
    bench: Bench, sends: dict[str, Send], *, rounds: int, requests: int
) -> dict[str, PathResult]:
    for send in sends.values():
        for _ in range(WARMUP_REQUESTS):
            await send()
    per_round: dict[str, list[Throughput]] = {name: [] for name in sends}
    for round_index in range(rounds):
        for name in rotated(list(sends), round_index):
            per_round[name].append(
                await measure_throughput(
                    sends[name],
                    ROUND_MAX_SECONDS,
                    bench.mongo_pid,
                    concurrency=CONCURRENCY,
                    max_requests=requests,
                    warmup_requests=0,
                    hang_guard_seconds=HANG_GUARD_SECONDS,
                )
            )
    return {name: PathResult(results) for name, results in per_round.items()}


@dataclass
class Transport:
    name: str
    results: dict[str, PathResult]

    def per_second(self, name: str) -> float:
        return self.results[name].throughput.per_second


async def measure_in_process(
    bench: Bench, document: ReferenceDocument, forms: list[RequestForm], rounds: int, requests: int
) -> Transport:
    async with (
        asgi_client(bench.app, bench.token) as graphql,
        asgi_client(bench.raw_app, bench.token) as raw,
    ):
        await check_trusted_needs_a_token(graphql, document)
        await register_apq(graphql, document)
        sends = senders(forms, graphql, raw)
        await check_forms(forms, sends)
        results = await measure_paths(bench, sends, rounds=rounds, requests=requests)
        for name, send in sends.items():
            results[name].sequential = await measure_latency(send)
    return Transport("in-process ASGI", results)


async def measure_over_uvicorn(
    bench: Bench, document: ReferenceDocument, forms: list[RequestForm], rounds: int, requests: int
) -> Transport:
    async with (
        uvicorn_server(bench.app) as graphql_url,
        uvicorn_server(bench.raw_app) as raw_url,
        loopback_client(graphql_url, bench.token) as graphql,
        loopback_client(raw_url, bench.token) as raw,
    ):
        await register_apq(graphql, document)
        sends = senders(forms, graphql, raw)
        await check_forms(forms, sends)
        results = await measure_paths(bench, sends, rounds=rounds, requests=requests)
    return Transport("uvicorn loopback", results)


# --- what the trusted path skips ---------------------------------------------------------


def graphql_endpoint(bench: Bench) -> GraphQLEndpoint:
    for route in bench.app.routes:
        if isinstance(route, Route) and route.path == "/graphql":
            assert isinstance(route.endpoint, GraphQLEndpoint)
            return route.endpoint
    raise BenchmarkError("no /graphql route")


def time_per_call_us(call: Callable[[int], object]) -> float:
    """Median of five batches; each batch bounded in calls and time."""
    batches = []
    for _ in range(5):
        calls, started = 0, perf_counter()
        deadline = started + MICRO_MAX_SECONDS / 5
        while calls < MICRO_MAX_CALLS // 5 and perf_counter() < deadline:
            call(calls)
            calls += 1
        batches.append((perf_counter() - started) / calls * 1e6)
    return median(batches)


def fresh_copies(text: str, count: int) -> list[str]:
    # Equal but distinct strings, as each request decodes its own: none has its hash
    # cached yet, so every lookup pays for hashing the text, as a request does.
    return [text.encode().decode() for _ in range(count)]


def microbenchmark(bench: Bench, document: ReferenceDocument) -> list[tuple[str, float]]:
    endpoint = graphql_endpoint(bench)
    settings, manifest = endpoint.settings, endpoint.persisted.manifest
    assert isinstance(manifest, Manifest)
    schema = endpoint.persisted.schema  # the GraphQLSchema requests are prepared against
    options = {"max_tokens": settings.max_tokens, "introspection": settings.introspection}
    uncached = prepare_document.__wrapped__
    texts = fresh_copies(document.plain_text, MICRO_MAX_CALLS)
    file_texts = fresh_copies(document.file_text, MICRO_MAX_CALLS)
    ids = fresh_copies(document.document_id, MICRO_MAX_CALLS)
    prepare_document(schema, document.plain_text, **options)  # a hit from here on
    trusted = manifest.by_document_id(document.document_id)
    if trusted is None:
        raise BenchmarkError(f"the server's manifest has no {DOCUMENT_PATH.stem}")
    operation = next(
        d for d in trusted.document.definitions if isinstance(d, OperationDefinitionNode)
    )
    limits = Limits.from_settings(settings)
    variables = {"n": THROUGHPUT_PAGE_SIZE}

    def limits_walk(_: int) -> object:
        return limit_errors(
            measure(schema, trusted.document, operation, variables=variables, limits=limits),
            limits,
        )

    return [
        (
            "parse only, uncached",
            time_per_call_us(lambda i: parse(texts[i], max_tokens=settings.max_tokens)),
        ),
        (
            "parse + validate, uncached",
            time_per_call_us(lambda i: uncached(schema, texts[i], **options)),
        ),
        (
            "parse + validate, LRU hit (plain, APQ)",
            time_per_call_us(lambda i: prepare_document(schema, texts[i], **options)),
        ),
        (
            "trusted: manifest lookup by documentId",
            time_per_call_us(lambda i: manifest.by_document_id(ids[i])),
        ),
        (
            "file text: manifest lookup by body",
            time_per_call_us(lambda i: manifest.by_body(file_texts[i])),
        ),
        ("operation limits walk (every path)", time_per_call_us(limits_walk)),
    ]


# --- report ----------------------------------------------------------------------------


def ratio_text(numerator: float, denominator: float) -> str:
    ratio = numerator / denominator
    return f"{ratio:.2f} (1/{1 / ratio:.1f})" if ratio < 1 else f"{ratio:.2f}"


def print_transport(transport: Transport, rounds: int, requests: int) -> None:
    print(
        f"\n{transport.name}: N={THROUGHPUT_PAGE_SIZE}, {CONCURRENCY} concurrent clients, "
        f"{rounds} rounds x {requests} requests per path (each round at most "
        f"{ROUND_MAX_SECONDS:g} s)"
    )
    print(
        f"{'path':<11} {'requests':>8} {'req/s':>7} {'rounds req/s':>14} {'median ms':>10} "
        f"{'seq median':>11} {'app CPU ms/req':>15} {'db CPU ms/req':>14}"
    )
    for name, result in transport.results.items():
        throughput = result.throughput
        spread = result.spread(lambda r: r.per_second)
        sequential = f"{result.sequential.median_ms:.1f}" if result.sequential else "-"
        database = throughput.database_cpu_ms
        print(
            f"{name:<11} {throughput.requests:>8} {throughput.per_second:>7.1f} {spread:>14} "
            f"{throughput.median_ms:>10.1f} {sequential:>11} {throughput.app_cpu_ms:>15.2f} "
            f"{'n/a' if database is None else f'{database:.1f}':>14}"
        )


def print_ratios(transport: Transport) -> None:
    trusted, plain, raw = (transport.per_second(n) for n in ("trusted", "plain text", "raw"))
    met = "met" if trusted * RATIO_TARGET >= raw else "MISSED"
    print(
        f"  {transport.name:<17} trusted/raw {ratio_text(trusted, raw)} "
        f"(target >= 1/{RATIO_TARGET}: {met}); plain/raw {ratio_text(plain, raw)}; "
        f"trusted/plain {trusted / plain:.2f}"
    )
    cpu = []
    for name in ("trusted", "plain text"):
        result = transport.results[name]
        spread = result.spread(lambda r: r.app_cpu_ms)
        cpu.append(f"{name} {result.throughput.app_cpu_ms:.1f} ms (rounds {spread})")
    print(f"  {'':<17} app CPU/req {', '.join(cpu)}")
    # Throughput here is bounded by the embedded database; with a faster one the app's
    # CPU per request would bound it, at about this ratio.
    raw_cpu = transport.results["raw"].throughput.app_cpu_ms
    trusted_cpu = transport.results["trusted"].throughput.app_cpu_ms
    print(
        f"  {'':<17} app CPU/req raw/trusted {ratio_text(raw_cpu, trusted_cpu)}: the ratio "
        "when the app's CPU, not the database, bounds throughput"
    )


def print_micro(rows: list[tuple[str, float]]) -> None:
    print("\nWhat the trusted path skips, per request (this document; median of 5 batches)")
    for name, microseconds in rows:
        print(f"  {name:<40} {microseconds:>9.1f} us")
    timing = dict(rows)
    print(
        f"  parse + validate: uncached {timing['parse + validate, uncached']:.1f} us, "
        f"LRU-cached {timing['parse + validate, LRU hit (plain, APQ)']:.1f} us, "
        f"trusted {timing['trusted: manifest lookup by documentId']:.1f} us"
    )


def print_notes() -> None:
    print(
        "\n  req/s: all rounds together; rounds req/s: the slowest and fastest round.\n"
        "  median ms: per request under the load above; seq median: one request at a time\n"
        "  (in-process only). app CPU: this process (client, app, drivers; uvicorn too);\n"
        "  db CPU: the secantusd-py child. With 2 cores, the busier of the two bounds req/s.\n"
        "  file text: the trusted document's exact bytes sent as `query`, which the server\n"
        "  runs as the trusted document; plain text and APQ hash parse and validate through\n"
        "  the LRU caches."
    )


# --- main ------------------------------------------------------------------------------


async def run(size: str, rounds: int, requests: int) -> int:
    document = ReferenceDocument.load()
    forms = request_forms(document)
    async with bench_environment(size) as bench:
        print(
            f"CareGraph persisted documents benchmark: size={size} "
            f"({bench.demo_counts['appointments']} appointments), seed 42; {load_text()}"
        )
        print(f"trusted document {DOCUMENT_PATH.name}: {document.document_id}")
        print("every request sends Authorization: Bearer <ADMIN access token>")
        transports = [await measure_in_process(bench, document, forms, rounds, requests)]
        uvicorn_note = None
        try:
            transports.append(await measure_over_uvicorn(bench, document, forms, rounds, requests))
        except (OSError, BenchmarkError, TimeoutError, httpx.HTTPError) as error:
            uvicorn_note = f"skipped: {type(error).__name__}: {error}"
        micro = microbenchmark(bench, document)
        for transport in transports:
            print_transport(transport, rounds, requests)
        if uvicorn_note:
            print(f"\nuvicorn loopback {uvicorn_note}")
        print_notes()
        print_micro(micro)
        print("\nSummary")
        for transport in transports:
            print_ratios(transport)
        print(f"  {load_text()}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds per transport")
    parser.add_argument(
        "--requests", type=int, default=REQUESTS_PER_ROUND, help="requests per path per round"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests < CONCURRENCY:
        parser.error(f"--rounds must be at least 1 and --requests at least {CONCURRENCY}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_benchmark(run(args.size, args.rounds, args.requests))


if __name__ == "__main__":
    sys.exit(main())
