"""Bills in SQL, on SQLite and PostgreSQL alike, joined to MongoDB records by id."""

from __future__ import annotations

import pytest

from tests.factories import book, create_doctor, create_patient, future_slot

CREATE = """mutation($input: CreateBillInput!) {
  createBill(input: $input) { id disease totalCost paid paidAt createdAt
    patient { id } appointment { id } } }"""


@pytest.fixture(params=["sqlite", "postgresql"])
def billing_backend(request):
    return request.param


@pytest.fixture
async def appointment(client):
    patient = await create_patient(client)
    doctor = await create_doctor(client)
    booked = await book(client, patient, doctor, future_slot())
    return {"patient": patient, "doctor": doctor, "appointment": booked}


async def test_a_bill_round_trips_exact_money(client, appointment):
    created = (
        await client.data(
            CREATE,
            {
                "input": {
                    "patientId": appointment["patient"]["id"],
                    "appointmentId": appointment["appointment"]["id"],
                    "disease": "Migraine",
                    "totalCost": "1234.50",
                }
            },
        )
    )["createBill"]
    assert created["totalCost"] == "1234.50"
    assert created["paid"] is False and created["paidAt"] is None
    assert created["patient"]["id"] == appointment["patient"]["id"]
    assert created["appointment"]["id"] == appointment["appointment"]["id"]

    through_appointment = await client.data(
        "query($id: ID!) { appointment(id: $id) { bill { id totalCost } } }",
        {"id": appointment["appointment"]["id"]},
    )
    assert through_appointment["appointment"]["bill"] == {
        "id": created["id"],
        "totalCost": "1234.50",
    }


async def test_paying_a_bill_records_when_and_protects_it(client, appointment):
    created = (
        await client.data(
            CREATE,
            {
                "input": {
                    "patientId": appointment["patient"]["id"],
                    "disease": "Migraine",
                    "totalCost": "10",
                }
            },
        )
    )["createBill"]
    paid = await client.data(
        "mutation($id: ID!) { updateBill(id: $id, input: {paid: true}) { paid paidAt } }",
        {"id": created["id"]},
    )
    assert paid["updateBill"]["paid"] is True and paid["updateBill"]["paidAt"]
    error = await client.error("mutation($id: ID!) { deleteBill(id: $id) }", {"id": created["id"]})
    assert error["extensions"]["code"] == "CONFLICT"


async def test_patient_bills_page_newest_first(client, appointment):
    patient_id = appointment["patient"]["id"]
    ids = []
    for cost in ("1.00", "2.00", "3.00"):
        bill = (
            await client.data(
                CREATE, {"input": {"patientId": patient_id, "disease": "Asthma", "totalCost": cost}}
            )
        )["createBill"]
        ids.append(bill["id"])
    query = """query($id: ID!, $after: String) { patient(id: $id) {
      bills(first: 2, after: $after) { totalCount nodes { id } pageInfo { hasNextPage endCursor } }
    } }"""
    first = (await client.data(query, {"id": patient_id}))["patient"]["bills"]
    assert first["totalCount"] == 3
    assert [n["id"] for n in first["nodes"]] == ids[::-1][:2]
    assert first["pageInfo"]["hasNextPage"] is True
    rest = (await client.data(query, {"id": patient_id, "after": first["pageInfo"]["endCursor"]}))[
        "patient"
    ]
    assert [n["id"] for n in rest["bills"]["nodes"]] == [ids[0]]
    assert rest["bills"]["pageInfo"]["hasNextPage"] is False


async def test_a_bill_cannot_be_negative_even_past_the_api(services):
    """The CHECK constraint guards the table itself, not just the GraphQL input."""
    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from datasources.billing_tables import bills
    from datasources.documents import utcnow

    with pytest.raises(IntegrityError):
        async with services.engine.begin() as connection:
            await connection.execute(
                sa.insert(bills).values(
                    patient_id="0" * 24, disease="x", total_cost_cents=-1, created_at=utcnow()
                )
            )


async def test_migrations_are_idempotent(services):
    from datasources.sql import migrate

    await migrate(services.engine)  # a second start finds nothing to do
    await migrate(services.engine)
