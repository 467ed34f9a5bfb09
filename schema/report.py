"""Reports for analysts and administrators: aggregates over all records, cached, and
for analysts stripped of any group small enough to point at individual patients."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import strawberry

from resolvers import reports as resolve
from schema.enums import Specialty
from schema.money import CENT

JSON = dict[str, Any]
# Said on every report with a period: why analysts may not pass finer instants.
ANALYST_DAYS = (
    " Analysts (not administrators) may pass only midnight UTC for `from` and `before`, "
    "so two periods differ by whole days at least and comparing them cannot isolate one "
    "appointment, prescription or bill; a finer instant is refused with BAD_USER_INPUT."
)


def _money(cents: float | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(CENT)


@strawberry.type(description="What was withheld to protect patients' privacy.")
class ReportPrivacy:
    minimum_group_size: int | None = strawberry.field(
        description="Groups with fewer distinct patients are left out (analysts); null: "
        "nothing is withheld (administrators)."
    )
    suppressed_groups: int
    note: str | None

    @classmethod
    def from_json(cls, data: JSON) -> ReportPrivacy:
        k, suppressed = data["k"], data["suppressed"]
        note = None
        if k is not None:
            note = (
                f"{suppressed} group(s) with fewer than {k} patients left out"
                if suppressed
                else f"every group has at least {k} patients"
            )
        return cls(minimum_group_size=k, suppressed_groups=suppressed, note=note)


@strawberry.type
class DoctorRanking:
    rank: int
    doctor_id: strawberry.ID
    doctor_name: str
    specialty: Specialty
    distinct_patients: int
    appointments: int = strawberry.field(description="Scheduled and completed, not cancelled.")


@strawberry.type
class TopDoctorsReport:
    rows: list[DoctorRanking]
    privacy: ReportPrivacy

    @classmethod
    def from_json(cls, data: JSON) -> TopDoctorsReport:
        return cls(
            rows=[
                DoctorRanking(
                    rank=r["rank"],
                    doctor_id=strawberry.ID(r["doctorId"]),
                    doctor_name=r["doctorName"],
                    specialty=Specialty(r["specialty"]),
                    distinct_patients=r["patients"],
                    appointments=r["appointments"],
                )
                for r in data["rows"]
            ],
            privacy=ReportPrivacy.from_json(data),
        )


@strawberry.type
class DiseaseDuration:
    disease: str
    patients: int = strawberry.field(description="Patients treated: one episode each.")
    average_days: float


@strawberry.type
class DiseaseDurationsReport:
    rows: list[DiseaseDuration]
    privacy: ReportPrivacy

    @classmethod
    def from_json(cls, data: JSON) -> DiseaseDurationsReport:
        return cls(
            rows=[
                DiseaseDuration(
                    disease=r["disease"],
                    patients=r["patients"],
                    average_days=round(r["averageDays"], 2),
                )
                for r in data["rows"]
            ],
            privacy=ReportPrivacy.from_json(data),
        )


@strawberry.type
class MonthlyAppointments:
    month: int
    suppressed: bool = strawberry.field(
        description="True when the month had too few patients to show (counts are null)."
    )
    scheduled: int | None
    completed: int | None
    cancelled: int | None
    patients: int | None


@strawberry.type
class MonthlyTrendReport:
    year: int
    months: list[MonthlyAppointments]
    privacy: ReportPrivacy

    @classmethod
    def from_json(cls, data: JSON) -> MonthlyTrendReport:
        months = []
        for r in data["rows"]:
            hidden = r.get("suppressed", False)
            months.append(
                MonthlyAppointments(
                    month=r["month"],
                    suppressed=hidden,
                    **{
                        name: None if hidden else r[name]
                        for name in ("scheduled", "completed", "cancelled", "patients")
                    },
                )
            )
        return cls(year=data["year"], months=months, privacy=ReportPrivacy.from_json(data))


@strawberry.type
class DiseaseCost:
    disease: str
    prescriptions: int | None
    average_prescription_cost: Decimal | None
    prescribed_patients: int | None
    bills: int | None
    average_billed_total: Decimal | None
    billed_patients: int | None


@strawberry.type
class DiseaseCostReport:
    rows: list[DiseaseCost]
    privacy: ReportPrivacy

    @classmethod
    def from_json(cls, data: JSON) -> DiseaseCostReport:
        return cls(
            rows=[
                DiseaseCost(
                    disease=r["disease"],
                    prescriptions=r.get("prescriptions"),
                    average_prescription_cost=_money(r.get("prescriptionCents")),
                    prescribed_patients=r.get("prescribedPatients"),
                    bills=r.get("bills"),
                    average_billed_total=_money(r.get("billedCents")),
                    billed_patients=r.get("billedPatients"),
                )
                for r in data["rows"]
            ],
            privacy=ReportPrivacy.from_json(data),
        )


@strawberry.type(description="Report cache counters, across all server processes.")
class ReportCacheStats:
    hits: int
    misses: int
    errors: int = strawberry.field(
        description="Reads that fell back to computing because Redis failed (this process)."
    )


@strawberry.type
class ReportQueries:
    top_doctors: TopDoctorsReport | None = strawberry.field(
        resolver=resolve.resolve_top_doctors,
        description="Doctors ranked by distinct patients, then appointments (not "
        "cancelled), for appointments starting in [from, before)." + ANALYST_DAYS,
    )
    disease_treatment_durations: DiseaseDurationsReport | None = strawberry.field(
        resolver=resolve.resolve_disease_treatment_durations,
        description="Per disease, the average length of a treatment episode in days. An "
        "episode is one patient's care for one disease: from the earliest start "
        "of a COMPLETED appointment that diagnosed it or a prescription indicated "
        "for it, to the latest end of those (a prescription without an end date "
        "runs until `before`, or the start of the current hour if earlier, but never ends before "
        "it starts). Only appointments and "
        "prescriptions starting in [from, before) count." + ANALYST_DAYS,
    )
    monthly_appointment_trend: MonthlyTrendReport | None = strawberry.field(
        resolver=resolve.resolve_monthly_appointment_trend,
        description="Per calendar month (UTC) of the year: appointments starting in it, by "
        "status. Its only period is the calendar month, for analysts and administrators.",
    )
    average_prescription_cost_by_disease: DiseaseCostReport | None = strawberry.field(
        resolver=resolve.resolve_average_prescription_cost_by_disease,
        description="Per disease: the average cost of prescriptions indicated for it and "
        "started in [from, before) (MongoDB), beside the average total of bills "
        "for visits that diagnosed it, billed in [from, before) (SQL billing; a "
        "bill names its patient and appointment). A side whose patients are "
        "too few for an analyst to see is null." + ANALYST_DAYS,
    )
    report_cache_stats: ReportCacheStats | None = strawberry.field(
        resolver=resolve.resolve_report_cache_stats
    )
