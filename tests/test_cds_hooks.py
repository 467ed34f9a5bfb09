"""The CDS Hooks 2.0 service, driven as a CDS client would from JSON fixtures written from
the specification's examples (tests/fixtures/cds/)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest
from bson import ObjectId

from auth.roles import Role
from tests.factories import create_doctor, create_patient
from tests.support import issue_token

FIXTURES = Path(__file__).parent / "fixtures" / "cds"
SIGN = "/cds-services/caregraph-medication-sign"
SELECT = "/cds-services/caregraph-medication-select"
CLIENT_SECRET = "cds-client-secret-" + "y" * 32
INDICATORS = {"info", "warning", "critical"}


@pytest.fixture
def settings(settings):
    clients = {
        "https://ehr.example.org": {
            "key": CLIENT_SECRET,
            "algorithm": "HS256",
            "role": "PHARMACIST",
        }
    }
    return settings.with_overrides(cds_clients_json=json.dumps(clients))


def fixture(name: str, **values: str):
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return json.loads(text)


@pytest.fixture
async def chart(client, services):
    patient = await create_patient(
        client,
        conditions=["Hypertension"],
        allergyRecords=[{"substance": "Penicillin", "severity": "ANAPHYLAXIS"}],
    )
    doctor = await create_doctor(client)
    await client.data(
        "mutation($p: ID!, $d: ID!) { prescribe(input: {patientId: $p, doctorId: $d, "
        'drug: "Simvastatin", dosage: {value: 40, unit: MG}, frequency: ONCE_DAILY, '
        'startDate: "2029-06-01", cost: "5.00"}) { __typename } }',
        {"p": patient["id"], "d": doctor["id"]},
    )
    return {"patient": patient["id"], "doctor": doctor["id"]}


async def _cds(app, path: str, body: object, token: str | None, **headers: str):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return await http.post(path, json=body, headers=headers)


def _assert_card_shape(card: dict) -> None:
    assert uuid.UUID(card["uuid"])
    assert 0 < len(card["summary"]) <= 140
    assert card["indicator"] in INDICATORS
    assert card["detail"]
    assert card["source"]["label"]
    for suggestion in card.get("suggestions", []):
        assert suggestion["label"] and uuid.UUID(suggestion["uuid"])
        for action in suggestion["actions"]:
            assert action["type"] in {"create", "update", "delete"} and action["description"]
        assert card["selectionBehavior"] == "at-most-one"
    for reason in card.get("overrideReasons", []):
        assert set(reason) == {"system", "code", "display"}


async def test_discovery_lists_both_hooks(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    assert {s["hook"] for s in services.values()} == {"order-select", "order-sign"}
    for service in services.values():
        assert service["title"] and service["description"]
        assert service["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


async def test_order_sign_returns_a_critical_card_for_clarithromycin_with_simvastatin(
    app, services, chart
):
    token = await issue_token(services, Role.PHARMACIST)
    response = await _cds(app, SIGN, fixture("order-sign.json", patientId=chart["patient"]), token)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    for card in cards:
        _assert_card_shape(card)
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert len(critical) == 1 and "simvastatin" in critical[0]["summary"]
    card = critical[0]
    assert card["source"]["url"].startswith("https://doi.org/")  # the ONC list
    assert {r["code"] for r in card["overrideReasons"]} >= {"BENEFIT_OUTWEIGHS_RISK"}
    suggestion = card["suggestions"][0]
    assert [a["type"] for a in suggestion["actions"]] == ["delete", "create"]
    assert suggestion["actions"][0]["resourceId"] == [
        "MedicationRequest/smart-MedicationRequest-103"
    ]
    created = suggestion["actions"][1]["resource"]
    assert created["resourceType"] == "MedicationRequest"
    assert created["medicationCodeableConcept"]["coding"][0]["display"] in {
        "pravastatin",
        "rosuvastatin",
    }
    # The same request again: the same card ids (feedback can name them).
    again = await _cds(app, SIGN, fixture("order-sign.json", patientId=chart["patient"]), token)
    assert [c["uuid"] for c in again.json()["cards"]] == [c["uuid"] for c in cards]


async def test_order_select_checks_the_selected_orders_and_drafts_against_each_other(
    app, services, chart
):
    token = await issue_token(services, Role.PHARMACIST)
    body = fixture("order-select.json", patientId=chart["patient"])
    response = await _cds(app, SELECT, body, token)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert [c["indicator"] for c in cards] == ["critical"]
    assert "allergic" in cards[0]["summary"]
    # Two draft orders that interact with each other, both new.
    both = copy.deepcopy(body)
    entries = both["context"]["draftOrders"]["entry"]
    entries[0]["resource"]["medicationCodeableConcept"] = {"text": "Warfarin 5 mg"}
    entries[1]["resource"]["medicationCodeableConcept"] = {"text": "Naproxen 500 mg"}
    both["context"]["selections"] = ["MedicationRequest/draft-amoxicillin"]
    response = await _cds(app, SELECT, both, token)
    assert any("naproxen" in c["summary"] for c in response.json()["cards"])


async def test_a_patient_with_nothing_to_say_gets_no_cards(app, services, client):
    patient = await create_patient(client)
    await create_doctor(client)
    token = await issue_token(services, Role.PHARMACIST)
    body = fixture("order-sign.json", patientId=patient["id"])
    resource = body["context"]["draftOrders"]["entry"][0]["resource"]
    resource["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "17767"}]
    }
    resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 5
    resource["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 1
    response = await _cds(app, SIGN, body, token)
    assert response.status_code == 200 and response.json() == {"cards": []}


def _patched(body: dict, patch: dict) -> dict:
    body = copy.deepcopy(body)
    for path, value in patch.items():
        target = body
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return body


@pytest.mark.parametrize(
    "case", json.loads((FIXTURES / "bad-requests.json").read_text()), ids=lambda c: c["name"]
)
async def test_bad_input_gets_a_400_with_a_clear_message(app, services, chart, case):
    token = await issue_token(services, Role.PHARMACIST)
    body = _patched(fixture("order-sign.json", patientId=chart["patient"]), case["patch"])
    response = await _cds(app, SIGN, body, token)
    assert response.status_code == 400, response.text
    assert case["message"] in response.json()["error"], response.json()


async def test_malformed_bodies_are_400_not_500(app, services):
    token = await issue_token(services, Role.PHARMACIST)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        for content in (b"{not json", b"[1, 2]", b'"text"'):
            response = await http.post(SIGN, content=content, headers=headers)
            assert response.status_code == 400 and response.json()["error"]
        response = await http.post(
            SIGN, content=b"{}", headers={**headers, "Content-Type": "text/plain"}
        )
        assert response.status_code == 400


async def test_the_same_access_policy_as_graphql(app, services, chart):
    body = fixture("order-sign.json", patientId=chart["patient"])
    assert (await _cds(app, SIGN, body, None)).status_code == 401
    assert (await _cds(app, SIGN, body, "not-a-token")).status_code == 401
    for role in (Role.PATIENT, Role.ANALYST, Role.ADMIN):
        token = await issue_token(services, role, patient_id=ObjectId(chart["patient"]))
        assert (await _cds(app, SIGN, body, token)).status_code == 403, role
    stranger = await issue_token(services, Role.DOCTOR, doctor_id=ObjectId())
    assert (await _cds(app, SIGN, body, stranger)).status_code == 404
    treating = await issue_token(services, Role.DOCTOR, doctor_id=ObjectId(chart["doctor"]))
    assert (await _cds(app, SIGN, body, treating)).status_code == 200
    assert (await _cds(app, "/cds-services/nope", body, treating)).status_code == 404


def _client_jwt(audience: str, **overrides) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://ehr.example.org",
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": uuid.uuid4().hex,
        **overrides,
    }
    return jwt.encode(claims, CLIENT_SECRET, algorithm="HS256")


async def test_a_configured_cds_client_may_sign_its_own_jwt(app, chart):
    body = fixture("order-sign.json", patientId=chart["patient"])
    good = _client_jwt("http://test" + SIGN)
    assert (await _cds(app, SIGN, body, good)).status_code == 200
    for bad in (
        _client_jwt("http://test/cds-services/other"),
        _client_jwt("http://test" + SIGN, exp=int(time.time()) - 10),
        jwt.encode(
            {
                "iss": "https://ehr.example.org",
                "aud": "http://test" + SIGN,
                "exp": int(time.time()) + 60,
                "iat": int(time.time()),
                "jti": "x",
            },
            "wrong-secret-" + "z" * 32,
            algorithm="HS256",
        ),
    ):
        assert (await _cds(app, SIGN, body, bad)).status_code == 401


async def test_feedback_is_stored_with_its_outcome(app, services, chart):
    token = await issue_token(services, Role.PHARMACIST)
    cards = (
        await _cds(app, SIGN, fixture("order-sign.json", patientId=chart["patient"]), token)
    ).json()["cards"]
    card = next(c for c in cards if c["indicator"] == "critical")
    body = fixture(
        "feedback.json", cardUuid=card["uuid"], suggestionUuid=card["suggestions"][0]["uuid"]
    )
    response = await _cds(app, SIGN + "/feedback", body, token)
    assert response.status_code == 200, response.text
    stored = await services.db["cds_feedback"].find().sort("outcomeTimestamp").to_list()
    assert [s["outcome"] for s in stored] == ["overridden", "accepted"]
    assert stored[0]["overrideReason"]["code"] == "BENEFIT_OUTWEIGHS_RISK"
    assert stored[0]["userComment"] == "Statin paused for the course"
    assert stored[1]["acceptedSuggestions"] == [card["suggestions"][0]["uuid"]]
    bad = await _cds(
        app,
        SIGN + "/feedback",
        {"feedback": [{"card": "x", "outcome": "maybe", "outcomeTimestamp": "now"}]},
        token,
    )
    assert bad.status_code == 400 and "outcome" in bad.json()["error"]
