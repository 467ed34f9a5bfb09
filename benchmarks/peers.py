"""Peers: the same slice of schema served by another Python GraphQL stack.

The slice is the reference query's: appointments with patient, doctor and bill (and
totalCount), resolved through CareGraph's own datasources and per-request dataloaders
(datasources/), authenticated the same way (auth/authenticate.py), so what differs is the
GraphQL layer. Measured in the same run as CareGraph, in-process over ASGI, with
benchmarks/speed.py's load (16 concurrent clients).

- Ariadne (schema-first, graphql-core): installed by `pip install -e .[bench]`.
- Graphene 3 is not measured in this environment: graphene 3.4.3 (the newest release)
  requires graphql-core < 3.3 and the app's strawberry-graphql requires >= 3.3, so the
  two cannot share one interpreter; a fair run needs a separate environment serving
  the same datasources over loopback (left for later, see the closing note).
"""

from __future__ import annotations

from typing import Any

from auth.authenticate import authenticate
from benchmarks.harness import BenchmarkError, load_text, measure_throughput
from datasources.loaders import Loaders
from datasources.pagination import PageRequest
from datasources.scope import AccessScope
from datasources.users import UserStore
from runtime.services import Services
from schema.money import from_cents

SLICE_QUERY = """query Slice($n: Int!) { appointments(first: $n) { totalCount
  nodes { start patient { name } doctor { name } bill { totalCost } } } }"""
SLICE_PAGE_SIZE = 20
CONCURRENCY = 16
MAX_REQUESTS = 5_000
TARGET = 1.5

SLICE_SDL = """
type Query { appointments(first: Int!): AppointmentConnection }
type AppointmentConnection { totalCount: Int! nodes: [Appointment!]! }
type Appointment { start: String! patient: Person doctor: Person bill: Bill }
type Person { name: String! }
type Bill { totalCost: String! }
"""


def _name(document: dict[str, Any]) -> str:
    return f"{document['givenName']} {document['familyName']}"


def build_ariadne_app(services: Services) -> Any:
    from ariadne import ObjectType, QueryType, make_executable_schema
    from ariadne.asgi import GraphQL

    users = UserStore(services.db, AccessScope.system())
    query, appointment = QueryType(), ObjectType("Appointment")
    person, bill = ObjectType("Person"), ObjectType("Bill")

    async def context(request: Any, _data: Any) -> dict[str, Any]:
        principal, _ = await authenticate(
            request.headers.get("authorization"), tokens=services.tokens, users=users
        )
        if principal is None:
            raise BenchmarkError("the peer refused the token")
        sources = services.data_sources(AccessScope(principal, services.db))
        return {"sources": sources, "loaders": Loaders(sources)}

    @query.field("appointments")
    async def resolve_appointments(_: Any, info: Any, first: int) -> dict[str, Any]:
        store = info.context["sources"].appointments
        page = await store.search(request=PageRequest(first=first))
        return {"nodes": page.items, "count": lambda: store.count(filter={})}

    connection = ObjectType("AppointmentConnection")

    @connection.field("totalCount")
    async def resolve_total_count(parent: dict[str, Any], _info: Any) -> int:
        return int(await parent["count"]())

    @appointment.field("start")
    def resolve_start(document: dict[str, Any], _info: Any) -> str:
        return document["start"].isoformat()

    @appointment.field("patient")
    async def resolve_patient(document: dict[str, Any], info: Any) -> Any:
        return await info.context["loaders"].patient_by_id.load(document["patientId"])

    @appointment.field("doctor")
    async def resolve_doctor(document: dict[str, Any], info: Any) -> Any:
        return await info.context["loaders"].doctor_by_id.load(document["doctorId"])

    @appointment.field("bill")
    async def resolve_bill(document: dict[str, Any], info: Any) -> Any:
        return await info.context["loaders"].bill_by_appointment_id.load(str(document["_id"]))

    @person.field("name")
    def resolve_name(document: dict[str, Any], _info: Any) -> str:
        return _name(document)

    @bill.field("totalCost")
    def resolve_total_cost(row: dict[str, Any], _info: Any) -> str:
        return str(from_cents(row["total_cost_cents"]))

    schema = make_executable_schema(SLICE_SDL, query, connection, appointment, person, bill)
    return GraphQL(schema, context_value=context)


async def compare_peers(
    services: Services, app: Any, token: str, seconds: float, mongo_pid: int
) -> float:
    """CareGraph's throughput on the slice over the fastest peer's (printed)."""
    from benchmarks.speed import client, graphql_sender

    variables = {"n": SLICE_PAGE_SIZE}
    peers = {"Ariadne": build_ariadne_app(services)}
    rates: dict[str, float] = {}
    print(f"\n4. peers: the same schema slice, N={SLICE_PAGE_SIZE}, {CONCURRENCY} clients")
    for label, asgi in (("CareGraph", app), *peers.items()):
        http = client(asgi, token)
        async with http:
            send = graphql_sender(http, SLICE_QUERY, variables, path=_path(label))
            body = await send()
            if b'"totalCost"' not in body:
                raise BenchmarkError(f"{label} answered without bills: {body[:300]!r}")
            rate = await measure_throughput(
                send, seconds, mongo_pid, concurrency=CONCURRENCY, max_requests=MAX_REQUESTS
            )
        rates[label] = rate.per_second
        print(
            f"   {label:<10} {rate.per_second:7.1f} req/s, median {rate.median_ms:7.1f} ms, "
            f"app CPU {rate.app_cpu_ms:5.1f} ms/req ({load_text()})"
        )
    fastest = max(rates[label] for label in peers)
    ratio = rates["CareGraph"] / fastest
    verdict = "meets target" if ratio >= TARGET else "MISSES target"
    print(f"   CareGraph / fastest peer = {ratio:.2f}x (target {TARGET:g}x: {verdict})")
    print("   Graphene 3: not measured (graphql-core conflict with strawberry; see peers.py)")
    return ratio


def _path(label: str) -> str:
    return "/graphql" if label == "CareGraph" else "/"
