"""The pure safety check, both directions for every alert kind: the alert fires when the
record says it should, and stays silent when the record says it should not."""

from __future__ import annotations

from datetime import date

import pytest

from knowledge import load_shipped
from safety import AlertKind, AlertSeverity, check, max_severity
from safety.check import SUMMARY_LIMIT
from safety.dose import daily_dose_mg
from safety.model import (
    AllergyRecord,
    AllergySeverity,
    AllergyStatus,
    CodedDrug,
    ConditionRecord,
    Draft,
    MedicationRecord,
    Snapshot,
)

KB = load_shipped()
START = date(2026, 3, 2)


def coded(text: str) -> CodedDrug:
    drug = KB.find_drug(text)
    if drug is None:
        return CodedDrug(text=text)
    return CodedDrug(text=text, rxcui=drug.rxcui, atc=drug.atc, display=drug.name)


def draft(
    text: str,
    value: float | None = None,
    unit: str = "MG",
    frequency: str = "ONCE_DAILY",
    start: date = START,
    end: date | None = None,
) -> Draft:
    return Draft(
        drug=coded(text),
        start=start,
        end=end,
        dose_value=value,
        dose_unit=unit,
        frequency=frequency,
    )


def medication(
    text: str,
    *,
    id: str = "rx1",
    start: date = date(2026, 1, 1),
    end: date | None = None,
    status: str = "ACTIVE",
    verification: str | None = "VERIFIED",
) -> MedicationRecord:
    return MedicationRecord(
        id=id, drug=coded(text), start=start, end=end, status=status, verification=verification
    )


def allergy(
    text: str, status: AllergyStatus = AllergyStatus.ACTIVE, severity: AllergySeverity | None = None
) -> AllergyRecord:
    concept = KB.find_allergy(text)
    if concept is None:
        return AllergyRecord(text=text, status=status, severity=severity)
    return AllergyRecord(
        text=text,
        kind=concept.kind,
        code=concept.code,
        display=concept.display,
        status=status,
        severity=severity,
    )


def condition(text: str) -> ConditionRecord:
    concept = KB.find_condition(text)
    if concept is None:
        return ConditionRecord(text=text)
    return ConditionRecord(text=text, code=concept.code, display=concept.display)


def kinds(alerts, kind: AlertKind):
    return [a for a in alerts if a.kind is kind]


# --- allergies -----------------------------------------------------------------------


def test_penicillin_allergy_stops_amoxicillin_and_augmentin():
    snapshot = Snapshot(age=40, allergies=(allergy("Penicillin"),))
    for text in ("amoxicillin", "Augmentin"):
        alerts = kinds(check(snapshot, draft(text), KB), AlertKind.ALLERGY)
        assert [a.severity for a in alerts] == [AlertSeverity.CRITICAL], text
        assert alerts[0].evidence[0].kind == "ALLERGY"


def test_penicillin_allergy_warns_for_cephalosporins_not_critical():
    alerts = check(Snapshot(allergies=(allergy("Penicillin"),)), draft("cephalexin"), KB)
    assert [(a.kind, a.severity) for a in alerts] == [(AlertKind.ALLERGY, AlertSeverity.WARNING)]
    assert "cross-reactivity" in alerts[0].summary.lower()


def test_resolved_or_unrelated_allergies_raise_nothing():
    resolved = Snapshot(allergies=(allergy("Penicillin", status=AllergyStatus.RESOLVED),))
    assert check(resolved, draft("amoxicillin"), KB) == []
    unrelated = Snapshot(allergies=(allergy("Penicillin"), allergy("Latex")))
    assert check(unrelated, draft("azithromycin"), KB) == []


def test_sulfonamide_antibiotic_allergy_does_not_extend_to_non_antibiotic_sulfonamides():
    snapshot = Snapshot(allergies=(allergy("Sulfonamides"),))
    assert kinds(check(snapshot, draft("Bactrim"), KB), AlertKind.ALLERGY)
    assert check(snapshot, draft("furosemide"), KB) == []


def test_substance_allergy_matches_the_ingredient_and_warns_for_relatives():
    snapshot = Snapshot(allergies=(allergy("Aspirin"),))
    same = kinds(check(snapshot, draft("ASA"), KB), AlertKind.ALLERGY)
    assert [a.severity for a in same] == [AlertSeverity.CRITICAL]
    related = kinds(check(snapshot, draft("ibuprofen"), KB), AlertKind.ALLERGY)
    assert [a.severity for a in related] == [AlertSeverity.WARNING]
    serious = Snapshot(allergies=(allergy("Aspirin", severity=AllergySeverity.ANAPHYLAXIS),))
    assert max_severity(check(serious, draft("ibuprofen"), KB)) is AlertSeverity.CRITICAL
    assert check(snapshot, draft("acetaminophen"), KB) == []


# --- interactions --------------------------------------------------------------------


def test_clarithromycin_with_simvastatin_is_contraindicated_either_way_round():
    for new, existing in (("clarithromycin", "simvastatin"), ("simvastatin", "clarithromycin")):
        alerts = kinds(
            check(Snapshot(medications=(medication(existing),)), draft(new), KB),
            AlertKind.INTERACTION,
        )
        assert alerts and alerts[0].severity is AlertSeverity.CRITICAL
        assert alerts[0].rule_id == "onc-11-cyp3a4-statins-strong-inhibitors"
        assert {s.display for s in alerts[0].suggestions} == {"pravastatin", "rosuvastatin"}
        assert alerts[0].evidence[0].id == "rx1"


@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        ("Adderall", "phenelzine", "onc-01-amphetamines-maois"),
        ("atazanavir", "omeprazole", "onc-02-atazanavir-ppis"),
        ("febuxostat", "azathioprine", "onc-03-febuxostat-thiopurines"),
        ("sertraline", "selegiline", "onc-04-ssris-maois"),
        ("irinotecan", "ketoconazole", "onc-05-irinotecan-strong-cyp3a4-inhibitors"),
        ("meperidine", "tranylcypromine", "onc-06-opioids-maois"),
        ("amitriptyline", "isocarboxazid", "onc-07-tcas-maois"),
        ("amiodarone", "haloperidol", "onc-08-qt-high-risk-pair"),
        ("ramelteon", "fluvoxamine", "onc-09-ramelteon-cyp1a2-inhibitors"),
        ("rifampin", "darunavir", "onc-10-cyp3a4-inducers-protease-inhibitors"),
        ("lovastatin", "itraconazole", "onc-11-cyp3a4-statins-strong-inhibitors"),
        ("ergotamine", "ritonavir", "onc-12-ergots-cyp3a4-inhibitors"),
        ("tizanidine", "ciprofloxacin", "onc-13-tizanidine-cyp1a2-inhibitors"),
        ("tranylcypromine", "procarbazine", "onc-14-tranylcypromine-procarbazine"),
        ("sumatriptan", "phenelzine", "onc-15-triptans-maois"),
    ],
)
def test_every_onc_high_priority_pair_is_critical(first, second, rule):
    alerts = check(Snapshot(medications=(medication(second),)), draft(first), KB)
    matching = [a for a in alerts if a.rule_id == rule]
    assert matching and matching[0].severity is AlertSeverity.CRITICAL, alerts


@pytest.mark.parametrize(
    ("first", "second", "rule"),
    [
        ("warfarin", "naproxen", "warfarin-nsaids"),
        ("warfarin", "Bactrim", "warfarin-cotrimoxazole-metronidazole"),
        ("sertraline", "tramadol", "ssri-serotonergic-opioids"),
        ("atorvastatin", "clarithromycin", "atorvastatin-strong-cyp3a4"),
        ("spironolactone", "lisinopril", "potassium-sparing-raas"),
        ("methotrexate", "ibuprofen", "methotrexate-nsaids"),
        ("lithium", "naproxen", "lithium-nsaids"),
        ("oxycodone", "alprazolam", "opioids-benzodiazepines"),
        ("citalopram", "azithromycin", "qt-known-risk-pair"),
    ],
)
def test_common_major_interactions_warn(first, second, rule):
    alerts = check(Snapshot(medications=(medication(second),)), draft(first), KB)
    assert any(a.rule_id == rule and a.severity is AlertSeverity.WARNING for a in alerts), alerts


def test_stopped_completed_rejected_or_non_overlapping_prescriptions_do_not_count():
    for record in (
        medication("simvastatin", status="STOPPED"),
        medication("simvastatin", status="COMPLETED"),
        medication("simvastatin", verification="REJECTED"),
        medication("simvastatin", end=date(2026, 3, 1)),  # ended the day before
        medication("simvastatin", start=date(2026, 4, 1)),  # starts after the draft ends
    ):
        snapshot = Snapshot(medications=(record,))
        assert check(snapshot, draft("clarithromycin", end=date(2026, 3, 10)), KB) == [], record


def test_an_open_ended_draft_meets_a_prescription_that_starts_later():
    snapshot = Snapshot(medications=(medication("simvastatin", start=date(2027, 1, 1)),))
    assert kinds(check(snapshot, draft("clarithromycin"), KB), AlertKind.INTERACTION)


def test_a_prescription_is_never_checked_against_itself():
    snapshot = Snapshot(medications=(medication("warfarin", id="self"),))
    rechecked = Draft(drug=coded("warfarin"), start=START, prescription_id="self")
    assert check(snapshot, rechecked, KB) == []


def test_harmless_pairs_raise_nothing():
    snapshot = Snapshot(medications=(medication("amlodipine"), medication("metformin", id="rx2")))
    assert check(snapshot, draft("levothyroxine", 0.1), KB) == []


# --- contraindications ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("drug", "condition_text", "severity"),
    [
        ("naproxen", "CKD stage 4", AlertSeverity.CRITICAL),
        ("ibuprofen", "heart failure", AlertSeverity.WARNING),
        ("ibuprofen", "GI bleed", AlertSeverity.CRITICAL),
        ("propranolol", "asthma", AlertSeverity.CRITICAL),
        ("metformin", "ESRD", AlertSeverity.CRITICAL),
        ("warfarin", "pregnant", AlertSeverity.CRITICAL),
        ("lisinopril", "pregnancy", AlertSeverity.CRITICAL),
        ("isotretinoin", "gestational diabetes", AlertSeverity.CRITICAL),
        ("valproate", "pregnant", AlertSeverity.CRITICAL),
    ],
)
def test_drug_condition_contraindications_fire(drug, condition_text, severity):
    snapshot = Snapshot(conditions=(condition(condition_text),))
    alerts = kinds(check(snapshot, draft(drug), KB), AlertKind.CONTRAINDICATION)
    assert alerts and alerts[0].severity is severity, alerts
    assert alerts[0].evidence[0].kind == "CONDITION"


def test_contraindications_stay_silent_outside_their_ranges():
    assert check(Snapshot(conditions=(condition("CKD stage 3"),)), draft("metformin"), KB) == []
    assert check(Snapshot(conditions=(condition("asthma"),)), draft("bisoprolol"), KB) == []
    assert check(Snapshot(conditions=(condition("hypertension"),)), draft("lisinopril"), KB) == []


def test_a_recorded_pregnancy_status_counts_without_a_coded_condition():
    alerts = check(Snapshot(pregnant=True), draft("warfarin"), KB)
    assert kinds(alerts, AlertKind.CONTRAINDICATION)
    assert check(Snapshot(pregnant=False), draft("warfarin"), KB) == []


# --- duplicate therapy ---------------------------------------------------------------


def test_two_drugs_of_one_atc_class_are_a_duplicate_and_other_classes_are_not():
    alerts = check(Snapshot(medications=(medication("omeprazole"),)), draft("pantoprazole"), KB)
    assert [(a.kind, a.severity) for a in alerts] == [
        (AlertKind.DUPLICATE_THERAPY, AlertSeverity.WARNING)
    ]
    assert check(Snapshot(medications=(medication("omeprazole"),)), draft("famotidine"), KB) == []


def test_the_same_ingredient_twice_is_a_duplicate_not_an_interaction():
    snapshot = Snapshot(medications=(medication("amoxicillin"),))
    alerts = check(snapshot, draft("Augmentin"), KB)
    assert [a.kind for a in alerts] == [AlertKind.DUPLICATE_THERAPY]


# --- dose range ----------------------------------------------------------------------


def test_daily_dose_is_dosage_times_frequency_in_milligrams():
    assert daily_dose_mg(500, "MG", "THREE_TIMES_DAILY") == 1500
    assert daily_dose_mg(1, "G", "FOUR_TIMES_DAILY") == 4000
    assert daily_dose_mg(50, "MCG", "ONCE_DAILY") == pytest.approx(0.05)
    assert daily_dose_mg(14, "MG", "WEEKLY") == pytest.approx(2)
    assert daily_dose_mg(2, "TABLET", "ONCE_DAILY") is None
    assert daily_dose_mg(100, "MG", "AS_NEEDED") is None


def test_doses_over_the_maximum_warn_and_far_over_are_critical():
    over = kinds(
        check(Snapshot(age=40), draft("acetaminophen", 1500, frequency="FOUR_TIMES_DAILY"), KB),
        AlertKind.DOSE_RANGE,
    )
    assert [a.severity for a in over] == [AlertSeverity.WARNING]
    daily_methotrexate = check(Snapshot(age=50), draft("methotrexate", 15), KB)
    assert max_severity(daily_methotrexate) is AlertSeverity.CRITICAL
    weekly = check(Snapshot(age=50), draft("methotrexate", 15, frequency="WEEKLY"), KB)
    assert weekly == []


def test_doses_inside_the_range_or_not_computable_raise_nothing():
    assert (
        check(Snapshot(age=40), draft("amoxicillin", 500, frequency="THREE_TIMES_DAILY"), KB) == []
    )
    assert check(Snapshot(age=40), draft("amoxicillin", 2, unit="CAPSULE"), KB) == []


def test_age_bands_lower_the_maximum_for_older_adults_and_children():
    older = check(Snapshot(age=70), draft("zolpidem", 10), KB)
    assert [a.kind for a in older] == [AlertKind.DOSE_RANGE]
    assert older[0].evidence[-1].display == "age 70"
    assert check(Snapshot(age=40), draft("zolpidem", 10), KB) == []
    child = check(Snapshot(age=8), draft("codeine", 15, frequency="FOUR_TIMES_DAILY"), KB)
    assert max_severity(child) is AlertSeverity.CRITICAL


def test_a_dose_below_the_usual_range_is_information():
    alerts = check(Snapshot(age=40), draft("sertraline", 10), KB)
    assert [(a.kind, a.severity) for a in alerts] == [(AlertKind.DOSE_RANGE, AlertSeverity.INFO)]


# --- uncoded entries -----------------------------------------------------------------


def test_uncoded_entries_are_named_and_never_silently_dropped():
    snapshot = Snapshot(
        allergies=(allergy("moonbeams"),),
        conditions=(condition("Dragon pox"),),
        medications=(medication("Elixir of life"),),
    )
    alerts = check(snapshot, draft("Unobtainium"), KB)
    assert {a.kind for a in alerts} == {AlertKind.UNCODED_ENTRY}
    assert {a.severity for a in alerts} == {AlertSeverity.INFO}
    assert {a.evidence[0].display for a in alerts} == {
        "moonbeams",
        "Dragon pox",
        "Elixir of life",
        "Unobtainium",
    }


def test_coded_records_raise_no_uncoded_alert():
    snapshot = Snapshot(
        allergies=(allergy("Latex"),),
        conditions=(condition("GERD"),),
        medications=(medication("omeprazole", end=date(2026, 2, 1)),),
    )
    assert check(snapshot, draft("amlodipine", 5), KB) == []


def test_a_resolved_uncoded_allergy_is_not_reported():
    snapshot = Snapshot(allergies=(allergy("moonbeams", status=AllergyStatus.RESOLVED),))
    assert check(snapshot, draft("amlodipine", 5), KB) == []


# --- the alert shape -----------------------------------------------------------------


def test_alerts_are_ordered_most_severe_first_with_bounded_summaries_and_stable_ids():
    snapshot = Snapshot(
        age=40,
        allergies=(allergy("Penicillin"),),
        conditions=(condition("pregnant"),),
        medications=(medication("warfarin"), medication("omeprazole", id="rx2")),
    )
    first = check(snapshot, draft("Augmentin", 875, frequency="TWICE_DAILY"), KB)
    again = check(snapshot, draft("Augmentin", 875, frequency="TWICE_DAILY"), KB)
    assert first == again
    ranks = [a.severity.rank for a in first]
    assert ranks == sorted(ranks, reverse=True)
    for alert in first:
        assert len(alert.summary) <= SUMMARY_LIMIT
        assert alert.source and alert.detail
    assert len({a.id for a in first}) == len(first)
