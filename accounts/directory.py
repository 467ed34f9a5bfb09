"""The few facts an unscoped read may tell a caller who cannot read the records
themselves: whether a patient exists (a doctor asking for emergency access does not
treat them yet), and the names of the staff on a patient's access log (the patient
cannot read doctor records or other accounts). Only these facts leave: never a store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bson import ObjectId

from datasources import DataSources
from datasources.users import UserStore


class Directory:
    def __init__(self, users: UserStore, records: Callable[[], DataSources]) -> None:
        self._users, self._records = users, records

    async def patient_exists(self, *, id: ObjectId) -> bool:
        return (await self._records().patients.get_many(ids=[id]))[0] is not None

    async def staff_names(self, *, user_ids: Iterable[str]) -> dict[str, str]:
        """Doctors' names by user id; other staff are left out (their accounts have no
        public name: the caller labels them by role)."""
        ids = [ObjectId(user_id) for user_id in user_ids if ObjectId.is_valid(user_id)]
        users = [u for u in await self._users.get_many(ids=ids) if u]
        doctor_ids = [u["doctorId"] for u in users if u.get("doctorId")]
        doctors = self._records().doctors
        by_id = {d["_id"]: d for d in await doctors.get_many(ids=doctor_ids) if d}
        names: dict[str, str] = {}
        for user in users:
            doctor = by_id.get(user.get("doctorId"))
            if doctor is not None:
                names[str(user["_id"])] = f"{doctor['givenName']} {doctor['familyName']}"
        return names
