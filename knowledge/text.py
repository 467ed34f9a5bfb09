"""How free text is matched against names, brands and synonyms: case, accents and
punctuation never decide a match ("Augmentin", "ASA", "Paracétamol", "co-amoxiclav")."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalise_term(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()


def candidate_terms(text: str) -> list[str]:
    """The whole normalised text, then ever shorter leading word runs, so "Metformin
    500 mg ER" still finds "metformin" while "amoxicillin clavulanate" wins over
    "amoxicillin" (longest first)."""
    words = normalise_term(text).split()
    return [" ".join(words[:n]) for n in range(len(words), 0, -1)]
