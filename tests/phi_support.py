"""A small clinical world for the PHI tests: one patient with contact details, their
doctor (by appointment), a prescription, a bill, and tokens for each role."""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId

from auth.roles import Role
from tests.factories import book, create_doctor, create_patient, future_slot
from tests.support import GraphQLClient, issue_token

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


@dataclass
class World:
    patient: dict
    other_patient: dict
    doctor: dict
    other_doctor: dict
    appointment: dict
    prescription: dict
    bill: dict
    tokens: dict[Role, str]
    other_doctor_token: str


async def build_world(client: GraphQLClient, services) -> World:
    patient = await create_patient(client, contact=CONTACT)
    other = await create_patient(client, givenName="Grace", familyName="Hopper")
    doctor = await create_doctor(client)
    other_doctor = await create_doctor(client, givenName="Stephen", familyName="Strange")
    appointment = await book(client, patient, doctor, future_slot(days=3))
    prescription = (
        await client.data(
            """mutation($input: CreatePrescriptionInput!) {
                 createPrescription(input: $input) { id } }""",
            {
                "input": {
                    "patientId": patient["id"],
                    "doctorId": doctor["id"],
                    "drug": "Amoxicillin",
                    "dosage": {"value": 500, "unit": "MG"},
                    "frequency": "THREE_TIMES_DAILY",
                    "startDate": "2026-01-05",
                    "endDate": "2026-01-12",
                    "cost": "12.50",
                    "indication": "Otitis media",
                }
            },
        )
    )["createPrescription"]
    bill = (
        await client.data(
            """mutation($input: CreateBillInput!) { createBill(input: $input) { id } }""",
            {
                "input": {
                    "patientId": patient["id"],
                    "appointmentId": appointment["id"],
                    "disease": "Otitis media",
                    "totalCost": "80.00",
                }
            },
        )
    )["createBill"]
    tokens = {
        Role.ADMIN: await issue_token(services, Role.ADMIN),
        Role.DOCTOR: await issue_token(services, Role.DOCTOR, doctor_id=ObjectId(doctor["id"])),
        Role.PATIENT: await issue_token(services, Role.PATIENT, patient_id=ObjectId(patient["id"])),
        Role.PHARMACIST: await issue_token(services, Role.PHARMACIST),
        Role.ANALYST: await issue_token(services, Role.ANALYST),
    }
    other_doctor_token = await issue_token(
        services, Role.DOCTOR, doctor_id=ObjectId(other_doctor["id"])
    )
    return World(
        patient,
        other,
        doctor,
        other_doctor,
        appointment,
        prescription,
        bill,
        tokens,
        other_doctor_token,
    )


async def audit_records(services) -> list[dict]:
    return await services.db["audit_log"].find({}).sort("seq", 1).to_list()
