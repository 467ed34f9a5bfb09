"""Portable name search: no `$text` (the embedded server has none).

Each person document stores `searchTerms`: the casefolded, accent-free name tokens plus
the full name. A query matches when every query token is a prefix of some term, which
an index on `searchTerms` serves with anchored, case-sensitive regexes on real MongoDB.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from datasources.filters import merge


def normalise(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    # Control characters separate words: no name holds one, and real MongoDB refuses a
    # NUL inside a $regex (an error, where the embedded server just finds nothing).
    stripped = "".join(
        " " if unicodedata.category(ch) == "Cc" else ch
        for ch in decomposed
        if not unicodedata.combining(ch)
    )
    return " ".join(stripped.casefold().split())


def search_terms(*names: str) -> list[str]:
    full = normalise(" ".join(names))
    return sorted(set(full.split()) | {full})


def name_filter(query: str) -> dict[str, Any]:
    tokens = normalise(query).split()
    if not tokens:
        return {}
    # Flat for one word (the common case); each further word is one more clause.
    return merge(*({"searchTerms": {"$regex": "^" + re.escape(token)}} for token in tokens))
