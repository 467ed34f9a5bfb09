"""Create records through the API, the way a client would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import GraphQLClient

ALL_WEEK = [
    {"dayOfWeek": day, "startTime": "00:00", "endTime": "23:59"}
    for day in ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
]


def future_slot(days: int = 2, hour: int = 10, minute: int = 0) -> datetime:
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def create_patient(client: GraphQLClient, **overrides) -> dict:
    data = await client.data(
        """mutation($input: CreatePatientInput!) {
             createPatient(input: $input) { id name conditions allergies } }""",
        {
            "input": {
                "givenName": "Ada",
                "familyName": "Lovelace",
                "birthDate": "1980-12-10",
                "sex": "FEMALE",
                **overrides,
            }
        },
    )
    return data["createPatient"]


async def create_doctor(client: GraphQLClient, **overrides) -> dict:
    data = await client.data(
        """mutation($input: CreateDoctorInput!) { createDoctor(input: $input) { id name } }""",
        {
            "input": {
                "givenName": "Gregory",
                "familyName": "House",
                "specialty": "NEUROLOGY",
                "availability": ALL_WEEK,
                **overrides,
            }
        },
    )
    return data["createDoctor"]


BOOK = """
mutation($input: CreateAppointmentInput!) {
  createAppointment(input: $input) {
    __typename
    ... on Appointment { id status start end durationMinutes }
    ... on DoctorUnavailable { reason message }
  }
}"""


async def book(
    client: GraphQLClient, patient: dict, doctor: dict, start: datetime, duration: int = 30
) -> dict:
    data = await client.data(
        BOOK,
        {
            "input": {
                "patientId": patient["id"],
                "doctorId": doctor["id"],
                "start": iso(start),
                "durationMinutes": duration,
                "reason": "Check-up",
            }
        },
    )
    return data["createAppointment"]
