"""`caregraph knowledge check`: validate the knowledge files and say what they hold."""

from __future__ import annotations

import sys
from pathlib import Path

from knowledge.loader import DATA_DIR, KnowledgeError, load_knowledge


def check_command(data_dir: str | None) -> int:
    directory = Path(data_dir) if data_dir else DATA_DIR
    try:
        kb = load_knowledge(directory)
    except KnowledgeError as error:
        print(error, file=sys.stderr)
        return 1
    counts = kb.counts()
    print(f"knowledge base {kb.version} in {directory}: valid")
    for label, value in [
        ("drugs", counts.drugs),
        ("drug classes", counts.classes),
        ("interactions", counts.interactions),
        ("  of which ONC high-priority", counts.onc_interactions),
        ("allergy classes", counts.allergy_classes),
        ("non-drug allergens", counts.allergens),
        ("drug-condition contraindications", counts.contraindications),
        ("duplicate-therapy groups", counts.duplicate_groups),
        ("dose ranges", counts.dose_ranges),
        ("coded conditions", counts.conditions),
        ("sources", len(kb.sources)),
    ]:
        print(f"  {label}: {value}")
    return 0
