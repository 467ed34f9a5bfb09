"""Field encryption at rest: what the database holds, what a client without the key
sees, and that everything reads back identically after key rotation, data-key
replacement and the migration of existing plaintext."""

from __future__ import annotations

import os
import stat
from typing import Any

import bson
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.encryption_options import AutoEncryptionOpts
from pymongo.errors import EncryptionError

from auth.roles import Role
from datasources import key_management
from datasources.encryption import ENCRYPTED_SUBTYPE, key_id_of
from datasources.kms import key_vault_namespace
from tests.conftest import http_client
from tests.factories import book, create_doctor, create_patient, future_slot
from tests.support import issue_token, running_app

CONTACT = {
    "phone": "+44 20 7946 0958",
    "email": "ada@example.org",
    "address": {
        "line1": "12 St James's Square",
        "line2": "Flat 3",
        "city": "London",
        "postalCode": "SW1Y 4JH",
        "country": "United Kingdom",
    },
}
CHART = """query($id: ID!) { patient(id: $id) { name contact { phone email
  address { line1 line2 city postalCode country } }
  appointments { nodes { reason cancellationReason status } } } }"""
PLAINTEXT = [
    b"ada@example.org",
    b"7946 0958",
    b"London",
    b"St James",
    b"SW1Y",
    b"Persistent cough",
    b"Feeling better",
]


@pytest.fixture
async def raw(services, mongo_uri):
    """The test's database through a plain client: no key, no decryption."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    yield client[services.settings.mongodb_database]
    await client.close()


async def _records(client) -> dict:
    patient = await create_patient(client, contact=CONTACT)
    doctor = await create_doctor(client)
    booked = await client.data(
        """mutation($input: CreateAppointmentInput!) { createAppointment(input: $input) {
             ... on Appointment { id } } }""",
        {
            "input": {
                "patientId": patient["id"],
                "doctorId": doctor["id"],
                "start": future_slot(days=4).isoformat(),
                "durationMinutes": 30,
                "reason": "Persistent cough for three weeks",
            }
        },
    )
    appointment = booked["createAppointment"]
    await client.data(
        """mutation($id: ID!) { cancelAppointment(id: $id, reason: "Feeling better now") {
             __typename } }""",
        {"id": appointment["id"]},
    )
    await book(client, patient, doctor, future_slot(days=5))
    return patient


async def _chart(client, patient) -> dict:
    return (await client.data(CHART, {"id": patient["id"]}))["patient"]


def _assert_no_plaintext(document: dict) -> None:
    encoded = bson.encode(document)
    for text in PLAINTEXT:
        assert text not in encoded, (text, document)


async def test_the_database_holds_no_plaintext_phi_and_the_api_reads_it_back(client, services, raw):
    patient = await _records(client)
    stored = await raw["patients"].find_one({"_id": ObjectId(patient["id"])})
    for name in ("phone", "email", "address"):
        value = stored["contact"][name]
        assert isinstance(value, bson.Binary) and value.subtype == ENCRYPTED_SUBTYPE, name
    _assert_no_plaintext(stored)
    async for appointment in raw["appointments"].find({"patientId": stored["_id"]}):
        _assert_no_plaintext(appointment)
        assert appointment["reason"].subtype == ENCRYPTED_SUBTYPE
    assert stored["givenName"] == "Ada"  # names stay searchable (README)
    chart = await _chart(client, patient)
    assert chart["contact"] == CONTACT
    reasons = {a["reason"] for a in chart["appointments"]["nodes"]}
    assert "Persistent cough for three weeks" in reasons
    assert "Feeling better now" in {a["cancellationReason"] for a in chart["appointments"]["nodes"]}
    # Name search keeps working.
    found = await client.data('{ patients(name: "lovel") { nodes { id } } }')
    assert [p["id"] for p in found["patients"]["nodes"]] == [patient["id"]]


async def test_the_key_vault_has_a_key_per_group_and_the_master_key_is_private(
    client, services, raw, settings
):
    await _records(client)
    database, collection = key_vault_namespace(settings).split(".", 1)
    keys = await services.plain_mongo_client[database][collection].find({}).to_list()
    assert sorted(name for k in keys for name in k["keyAltNames"]) == [
        "caregraph:clinical-notes",
        "caregraph:contact",
    ]
    indexes = await services.plain_mongo_client[database][collection].index_information()
    unique = [i for i in indexes.values() if i.get("unique")]
    assert unique and unique[0]["key"] == [("keyAltNames", 1)]
    master = settings.data_dir / "field-encryption" / "master-key-1"
    assert len(master.read_bytes()) == 96
    assert stat.S_IMODE(os.stat(master).st_mode) == 0o600
    # Values carry the key of their group.
    stored = await raw["patients"].find_one({})
    contact_key = next(k for k in keys if "caregraph:contact" in k["keyAltNames"])["_id"]
    assert key_id_of(stored["contact"]["phone"]) == bytes(contact_key)


async def test_a_client_without_the_key_sees_ciphertext_only(client, services, raw, mongo_uri):
    patient = await _records(client)
    stored = await raw["patients"].find_one({"_id": ObjectId(patient["id"])})
    assert all(isinstance(v, bson.Binary) for v in stored["contact"].values())
    # A client with the wrong master key cannot decrypt either.
    wrong: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongo_uri,
        auto_encryption_opts=AutoEncryptionOpts(
            {"local:k1": {"key": os.urandom(96)}},
            key_vault_namespace(services.settings),
            bypass_auto_encryption=True,
        ),
    )
    try:
        with pytest.raises(EncryptionError):
            await wrong[services.settings.mongodb_database]["patients"].find_one(
                {"_id": ObjectId(patient["id"])}
            )
    finally:
        await wrong.close()


async def test_everything_reads_back_identically_after_rotation_and_key_replacement(
    app, client, services, raw, settings
):
    patient = await _records(client)
    before = await _chart(client, patient)
    rotation = await key_management.rotate_master_key(services)
    assert rotation.provider == "local:k2" and rotation.rewrapped == 2
    assert not (settings.data_dir / "field-encryption" / "master-key-1").exists()
    old_phone = (await raw["patients"].find_one({}))["contact"]["phone"]

    # A server started after the rotation (it holds only the new master key).
    # The `app` fixture, on the same database, drops it.
    async with running_app(settings, drop_database=False) as restarted:
        fresh = restarted.state.services
        changed = await key_management.replace_data_key(fresh, "contact", delete_old=True)
        assert changed == 3  # the patient's phone, email and address
        async with http_client(restarted, await issue_token(fresh, Role.ADMIN)) as admin:
            assert await _chart(admin, patient) == before
    new_phone = (await raw["patients"].find_one({}))["contact"]["phone"]
    assert key_id_of(new_phone) != key_id_of(old_phone)
    keys = await services.plain_mongo_client[raw.name]["__keyVault"].count_documents({})
    assert keys == 2  # the replaced contact key was deleted


async def test_the_migration_encrypts_plaintext_idempotently_and_resumably(client, services, raw):
    for index in range(3):
        await raw["patients"].insert_one(
            {"givenName": f"Old{index}", "familyName": "Record", "contact": CONTACT}
        )
    assert await key_management.encrypt_existing(services, limit=1) == 1  # interrupted
    assert await raw["patients"].count_documents({"contact.phone": {"$type": "string"}}) == 2
    assert await key_management.encrypt_existing(services) == 2  # resumed
    assert await key_management.encrypt_existing(services) == 0  # idempotent
    async for document in raw["patients"].find({}):
        _assert_no_plaintext(document)
    marker = await raw["caregraph_migrations"].find_one({"_id": "field-encryption"})
    assert marker["version"] == 1
    decrypted = await services.db["patients"].find_one({"givenName": "Old0"})
    assert decrypted["contact"] == CONTACT
