"""The shipped knowledge base loads, holds what the issue lists, and its validator names
the file and entry of every problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from knowledge import DATA_DIR, KnowledgeBase, KnowledgeError, load_knowledge, load_shipped
from knowledge.model import AllergyConcept, ConditionConcept, Icd10Range

KB = load_shipped()


def allergy(text: str) -> AllergyConcept:
    """The shipped concept for an allergy text that must map to one."""
    concept = KB.find_allergy(text)
    assert concept is not None, text
    return concept


def condition(text: str) -> ConditionConcept:
    """The shipped concept for a condition text or code that must map to one."""
    concept = KB.find_condition(text)
    assert concept is not None, text
    return concept


def test_the_shipped_files_implement_the_protocol_and_hold_the_promised_content():
    assert isinstance(KB, KnowledgeBase)
    counts = KB.counts()
    assert counts.drugs >= 150
    assert counts.onc_interactions == 15  # Phansalkar et al. 2012, in full
    assert counts.allergy_classes >= 8
    assert counts.contraindications >= 20
    assert counts.duplicate_groups >= 20
    assert counts.dose_ranges >= 150
    assert len(KB.version) == 16


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Augmentin", "amoxicillin / clavulanate"),
        ("ASA", "aspirin"),
        ("asa", "aspirin"),
        ("Paracétamol", "acetaminophen"),
        ("PARACETAMOL", "acetaminophen"),
        ("Salbutamol", "albuterol"),
        ("Amoxicillin 500 mg capsules", "amoxicillin"),
        ("co-amoxiclav", "amoxicillin / clavulanate"),
        ("Zoloft", "sertraline"),
        ("frusemide", "furosemide"),
    ],
)
def test_free_text_maps_through_names_brands_and_synonyms(text, name):
    drug = KB.find_drug(text)
    assert drug is not None and drug.name == name


def test_unknown_text_maps_to_nothing():
    assert KB.find_drug("Unobtainium 5 mg") is None
    assert KB.find_condition("Dragon pox") is None
    assert KB.find_allergy("moonbeams") is None


def test_allergies_map_to_classes_substances_or_non_drug_allergens():
    assert allergy("Penicillin").kind == "CLASS"
    assert allergy("Sulfa drugs").code == "sulfonamide-antibiotic-allergy"
    assert allergy("Aspirin").kind == "SUBSTANCE"
    assert allergy("Latex").kind == "ALLERGEN"


def test_conditions_map_from_text_or_code():
    assert condition("Type 2 diabetes").code == "E11.9"
    assert condition("n18.4").code == "N18.4"


@pytest.mark.parametrize(
    ("range_text", "code", "inside"),
    [
        ("N18.4-N18.6", "N18.4", True),
        ("N18.4-N18.6", "N18.6", True),
        ("N18.4-N18.6", "N18.3", False),
        ("N18.4-N18.6", "N18.30", False),
        ("I50", "I50.22", True),
        ("I50", "I51.0", False),
        ("O00-O9A", "O24.419", True),
        ("O00-O9A", "P00.0", False),
        ("K25-K28", "K27.9", True),
        ("K25-K28", "K29.0", False),
    ],
)
def test_icd10_ranges_compare_by_prefix(range_text, code, inside):
    assert Icd10Range.parse(range_text).contains(code) is inside


def _copy(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def _edit(path: Path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_a_changed_file_changes_the_version(tmp_path):
    data = _copy(tmp_path)
    _edit(data / "classes.json", lambda d: d["classes"][0].update(name="Penicillins (edited)"))
    assert load_knowledge(data).version != KB.version


@pytest.mark.parametrize(
    ("file", "change", "message"),
    [
        (
            "interactions.json",
            lambda d: d["interactions"][0]["a"].update(classes=["nope"]),
            "unknown class 'nope'",
        ),
        (
            "interactions.json",
            lambda d: d["interactions"][1]["a"].update(drugs=["unobtainium"]),
            "unknown drug 'unobtainium'",
        ),
        (
            "drugs_cardiovascular.json",
            lambda d: d["drugs"][0].pop("source"),
            "'source' must be a non-empty string",
        ),
        (
            "drugs_cardiovascular.json",
            lambda d: d["drugs"][1].update(rxcui="11289"),
            "duplicate rxcui 11289",
        ),
        (
            "contraindications.json",
            lambda d: d["contraindications"][0].update(source="blog: x"),
            "does not start with a known source id",
        ),
        (
            "drugs_cardiovascular.json",
            lambda d: d["drugs"][0].update(atc="B01"),
            "is not 7 characters",
        ),
        (
            "drugs_cardiovascular.json",
            lambda d: d["drugs"][0]["dose"].update(max=1),
            "usual max <= max",
        ),
    ],
)
def test_the_validator_names_the_file_and_the_problem(tmp_path, file, change, message):
    data = _copy(tmp_path)
    _edit(data / file, change)
    with pytest.raises(KnowledgeError) as raised:
        load_knowledge(data)
    assert any(p.startswith(file) and message in p for p in raised.value.problems), raised.value


def test_a_file_that_is_not_json_is_named(tmp_path):
    data = _copy(tmp_path)
    (data / "duplicates.json").write_text("{ not json")
    with pytest.raises(KnowledgeError, match=r"duplicates\.json: not valid JSON"):
        load_knowledge(data)


def test_the_cli_check_passes_on_the_shipped_files_and_fails_on_a_broken_one(tmp_path, capsys):
    from cli import main

    assert main(["knowledge", "check"]) == 0
    assert "drugs" in capsys.readouterr().out
    data = _copy(tmp_path)
    (data / "classes.json").write_text("[]")
    assert main(["knowledge", "check", "--data-dir", str(data)]) == 1
    assert "classes.json" in capsys.readouterr().err


async def test_a_broken_knowledge_file_stops_the_app_start_naming_it(settings, tmp_path):
    from tests.support import running_app

    data = _copy(tmp_path)
    _edit(data / "interactions.json", lambda d: d["interactions"][0].pop("management"))
    with pytest.raises(KnowledgeError, match=r"interactions\.json: interaction 'onc-01"):
        async with running_app(settings.with_overrides(knowledge_dir=data)):
            pass
