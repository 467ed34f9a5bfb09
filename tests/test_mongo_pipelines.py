"""Each MongoDB query form CareGraph relies on, run against the embedded server and
checked against an answer computed in Python. If the embedded server (or a future
real-MongoDB CI job) ever disagrees, this is where it shows. See shared MONGODB_NOTES."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from datasources.pagination import PageRequest
from datasources.people import DoctorStore, PatientStore, with_name_index
from datasources.scope import AccessScope
from datasources.search import name_filter


@pytest.fixture
async def db(services):
    return services.db


async def test_first_n_per_parent_after_sort(db):
    """pages_by_parent: $match -> $sort -> $group with $firstN keeps the sort order."""
    parents = [ObjectId() for _ in range(3)]
    base = datetime(2030, 1, 1, tzinfo=UTC)
    documents = [
        {
            "_id": ObjectId(),
            "patientId": parents[i % 3],
            "start": base + timedelta(hours=(i * 7) % 23),
            "status": "SCHEDULED",
        }
        for i in range(30)
    ]
    await db.appointments.insert_many(documents)
    from datasources.appointments import AppointmentStore

    pages = await AppointmentStore(db, AccessScope.system()).pages_by_parent(
        parent_field="patientId", parent_ids=parents, filter={}, request=PageRequest(first=4)
    )
    for parent in parents:
        expected = sorted(
            (d for d in documents if d["patientId"] == parent), key=lambda d: (d["start"], d["_id"])
        )
        assert [d["_id"] for d in pages[parent].items] == [d["_id"] for d in expected[:4]]
        assert pages[parent].has_next_page


async def test_elem_match_on_an_array_of_subdocuments(db):
    monday = {"dayOfWeek": "MONDAY", "startMinute": 540, "endMinute": 720}
    friday = {"dayOfWeek": "FRIDAY", "startMinute": 540, "endMinute": 720}
    await db.doctors.insert_many(
        [
            {"_id": 1, "availability": [monday]},
            {"_id": 2, "availability": [friday, monday]},
            {"_id": 3, "availability": [friday]},
        ]
    )
    a_friday = datetime(2030, 1, 4).date()
    found = await db.doctors.find(DoctorStore.search_filter(available_on=a_friday)).to_list()
    assert sorted(d["_id"] for d in found) == [2, 3]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("jos", ["José Müller"]),
        ("MÜLL", ["José Müller"]),
        ("muller jo", ["José Müller"]),
        ("zoe", ["Zoë O'Brien"]),
        ("o'b", ["Zoë O'Brien"]),
        (".*", []),
        ("(", []),
    ],
)
async def test_anchored_regex_on_normalised_search_terms(db, query, expected):
    for given, family in [("José", "Müller"), ("Zoë", "O'Brien"), ("Ann", "Josephs-Doe")]:
        await db.patients.insert_one(with_name_index({"givenName": given, "familyName": family}))
    found = await db.patients.find(PatientStore.search_filter(name=query)).to_list()
    names = sorted(f"{d['givenName']} {d['familyName']}" for d in found)
    if query == "jos":
        expected = ["Ann Josephs-Doe", "José Müller"]  # family names match too
    assert names == expected
    assert name_filter("   ") == {}


async def test_a_doctors_schedule_is_read_through_its_index(db):
    """Equality + range is the plan shape the embedded server is reliable for. (Name
    search uses an anchored regex: real MongoDB serves it from the searchTerms index,
    the embedded server scans; a range on that multikey index is no alternative, as
    the embedded server then drops matches that mongod returns.)"""
    from datasources.appointments import appointment_filter

    filter = appointment_filter(doctor_id=ObjectId(), starts_from=datetime(2030, 1, 1, tzinfo=UTC))
    plan = await db.appointments.find(filter).sort([("start", 1), ("_id", 1)]).explain()
    winning = str(plan["queryPlanner"]["winningPlan"])
    assert "IXSCAN" in winning and "list_by_doctorId" in winning
