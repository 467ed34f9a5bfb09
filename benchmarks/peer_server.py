"""One stack serving the reference slice over loopback, as a process of its own.

    python -m benchmarks.peer_server --stack caregraph|ariadne|graphene --port PORT \\
        --data-dir DIR --mongodb-uri URI --database NAME --billing-url URL

benchmarks/peers.py starts one of these per stack on the same embedded MongoDB, SQLite
file and signing key, so each stack gets the same kind of process (uvicorn, one worker)
and the load client runs elsewhere. Graphene 3 runs under an interpreter of its own
(its graphql-core < 3.3 cannot sit beside strawberry's), so this module imports no
GraphQL library at the top: each stack imports its own.

The Ariadne and Graphene slices resolve through CareGraph's datasources and per-request
dataloaders and authenticate as auth/authenticate.py does; CareGraph serves its app.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from auth.authenticate import authenticate
from datasources.loaders import Loaders
from datasources.pagination import PageRequest
from datasources.scope import AccessScope
from datasources.users import UserStore
from runtime.services import Services
from settings import Settings

SLICE_SDL = """
type Query { appointments(first: Int!): AppointmentConnection }
type AppointmentConnection { totalCount: Int! nodes: [Appointment!]! }
type Appointment { start: String! patient: Person doctor: Person bill: Bill }
type Person { name: String! }
type Bill { totalCost: String! }
"""


def _name(document: dict[str, Any]) -> str:
    return f"{document['givenName']} {document['familyName']}"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def slice_context(services: Services, authorization: str | None) -> dict[str, Any] | None:
    users = UserStore(services.db, AccessScope.system())
    principal, _ = await authenticate(authorization, tokens=services.tokens, users=users)
    if principal is None:
        return None
    sources = services.data_sources(AccessScope(principal, services.db))
    return {"sources": sources, "loaders": Loaders(sources)}


async def slice_appointments(context: dict[str, Any], first: int) -> dict[str, Any]:
    store = context["sources"].appointments
    page = await store.search(request=PageRequest(first=first))
    return {"nodes": page.items, "count": lambda: store.count(filter={})}


async def load_patient(context: dict[str, Any], document: dict[str, Any]) -> Any:
    return await context["loaders"].patient_by_id.load(document["patientId"])


async def load_doctor(context: dict[str, Any], document: dict[str, Any]) -> Any:
    return await context["loaders"].doctor_by_id.load(document["doctorId"])


async def load_bill(context: dict[str, Any], document: dict[str, Any]) -> Any:
    return await context["loaders"].bill_by_appointment_id.load(str(document["_id"]))


def ariadne_app(services: Services) -> Any:
    from ariadne import ObjectType, QueryType, make_executable_schema
    from ariadne.asgi import GraphQL

    query, connection = QueryType(), ObjectType("AppointmentConnection")
    appointment, person, bill = ObjectType("Appointment"), ObjectType("Person"), ObjectType("Bill")

    async def context(request: Any, _data: Any) -> dict[str, Any] | None:
        return await slice_context(services, request.headers.get("authorization"))

    query.set_field("appointments", lambda _, info, first: slice_appointments(info.context, first))

    @connection.field("totalCount")
    async def total_count(parent: dict[str, Any], _info: Any) -> int:
        return int(await parent["count"]())

    appointment.set_field("start", lambda document, _info: document["start"].isoformat())
    appointment.set_field("patient", lambda document, info: load_patient(info.context, document))
    appointment.set_field("doctor", lambda document, info: load_doctor(info.context, document))
    appointment.set_field("bill", lambda document, info: load_bill(info.context, document))
    person.set_field("name", lambda document, _info: _name(document))
    bill.set_field("totalCost", lambda row, _info: _money(row["total_cost_cents"]))
    schema = make_executable_schema(SLICE_SDL, query, connection, appointment, person, bill)
    return GraphQL(schema, context_value=context)


def graphene_app(services: Services) -> Starlette:
    import graphene

    class Person(graphene.ObjectType):
        name = graphene.String(required=True)

        @staticmethod
        def resolve_name(document: dict[str, Any], _info: Any) -> str:
            return _name(document)

    class Bill(graphene.ObjectType):
        total_cost = graphene.String(required=True)

        @staticmethod
        def resolve_total_cost(row: dict[str, Any], _info: Any) -> str:
            return _money(row["total_cost_cents"])

    class Appointment(graphene.ObjectType):
        start = graphene.String(required=True)
        patient = graphene.Field(Person)
        doctor = graphene.Field(Person)
        bill = graphene.Field(Bill)

        @staticmethod
        def resolve_start(document: dict[str, Any], _info: Any) -> str:
            return document["start"].isoformat()

        @staticmethod
        async def resolve_patient(document: dict[str, Any], info: Any) -> Any:
            return await load_patient(info.context, document)

        @staticmethod
        async def resolve_doctor(document: dict[str, Any], info: Any) -> Any:
            return await load_doctor(info.context, document)

        @staticmethod
        async def resolve_bill(document: dict[str, Any], info: Any) -> Any:
            return await load_bill(info.context, document)

    class AppointmentConnection(graphene.ObjectType):
        total_count = graphene.Int(required=True)
        nodes = graphene.List(graphene.NonNull(Appointment), required=True)

        @staticmethod
        async def resolve_total_count(parent: dict[str, Any], _info: Any) -> int:
            return int(await parent["count"]())

        @staticmethod
        def resolve_nodes(parent: dict[str, Any], _info: Any) -> Any:
            return parent["nodes"]

    class Query(graphene.ObjectType):
        appointments = graphene.Field(AppointmentConnection, first=graphene.Int(required=True))

        @staticmethod
        async def resolve_appointments(_root: Any, info: Any, first: int) -> Any:
            return await slice_appointments(info.context, first)

    schema = graphene.Schema(query=Query)

    async def endpoint(request: Request) -> Response:
        context = await slice_context(services, request.headers.get("authorization"))
        if context is None:
            return Response(b'{"errors":[{"message":"unauthenticated"}]}', 401)
        body = orjson.loads(await request.body())
        result = await schema.execute_async(
            body["query"], variable_values=body.get("variables"), context_value=context
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [{"message": str(error)} for error in result.errors]
        return Response(orjson.dumps(payload), media_type="application/json")

    return Starlette(routes=[Route("/graphql", endpoint, methods=["POST"])])


def build(stack: str, settings: Settings) -> Starlette:
    if stack == "caregraph":
        from app import create_app

        return create_app(settings)
    served: dict[str, ASGIApp] = {}

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        services = await Services.open(settings)
        inner = ariadne_app if stack == "ariadne" else graphene_app
        served["app"] = inner(services)
        try:
            yield
        finally:
            await services.close()

    class Delegate:
        """The stack's own ASGI app, built once the services are open."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await served["app"](scope, receive, send)

    return Starlette(routes=[Route("/graphql", Delegate(), methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", choices=("caregraph", "ariadne", "graphene"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--mongodb-uri", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--billing-url", required=True)
    arguments = parser.parse_args()
    settings = Settings(
        data_dir=arguments.data_dir,
        mongodb_uri=arguments.mongodb_uri,
        mongodb_database=arguments.database,
        database_url=arguments.billing_url,
        redis_url=None,
        demo_data=False,
        graphiql=False,
    )
    app = build(arguments.stack, settings)
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
