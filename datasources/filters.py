"""Combining MongoDB filters into shapes a query planner can serve from an index.

`{"$and": [filter, scope]}` hides every condition from the embedded server's planner
(it then scans the whole collection) and is needlessly indirect for mongod too. Most
filters and scopes name different fields, so they merge into one flat document; where
both constrain the same field, the two conditions are combined into one condition on
that field (an intersection of id sets, an equality kept or refused, range bounds
tightened), which is still flat. Only conditions this module does not understand are
left to `$and`, so merging never changes which documents match.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Document = dict[str, Any]

# Matches no document (the planner answers it from the _id index without a scan).
NOTHING: Document = {"_id": {"$in": []}}

_LOWER = ("$gt", "$gte")
_UPPER = ("$lt", "$lte")


def _is_operator_document(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and all(key.startswith("$") for key in value)


def _allowed_values(condition: Any) -> list[Any] | None:
    """The finite set of values a condition allows (equality or `$in`), else None."""
    if not isinstance(condition, dict):
        return [condition]
    if set(condition) == {"$in"} and isinstance(condition["$in"], list):
        return list(condition["$in"])
    if set(condition) == {"$eq"}:
        return [condition["$eq"]]
    return None


def _is_range(condition: Any) -> bool:
    return _is_operator_document(condition) and all(op in _LOWER + _UPPER for op in condition)


def _tighter(op_a: str, a: Any, op_b: str, b: Any, *, lower: bool) -> tuple[str, Any]:
    if a == b:  # the exclusive bound of two equal ones is the tighter
        return (op_a if op_a in ("$gt", "$lt") else op_b), a
    if lower:
        return (op_a, a) if a > b else (op_b, b)
    return (op_a, a) if a < b else (op_b, b)


def _merge_ranges(a: Document, b: Document) -> Document:
    merged: Document = {}
    for side, ops in ((True, _LOWER), (False, _UPPER)):
        bounds = [(op, value) for op, value in (*a.items(), *b.items()) if op in ops]
        if not bounds:
            continue
        op, value = bounds[0]
        for other_op, other in bounds[1:]:
            op, value = _tighter(op, value, other_op, other, lower=side)
        merged[op] = value
    return merged


def _merge_condition(a: Any, b: Any) -> tuple[bool, Any]:
    """(True, one condition equivalent to both) or (False, None) when not combinable."""
    allowed_a, allowed_b = _allowed_values(a), _allowed_values(b)
    if allowed_a is not None and allowed_b is not None:
        # Set semantics over BSON values that are all hashable here (ids, strings).
        try:
            keep = set(allowed_b)
        except TypeError:
            return False, None
        both = [value for value in dict.fromkeys(allowed_a) if value in keep]
        if len(both) == 1:
            return True, both[0]
        return True, {"$in": both}
    if _is_range(a) and _is_range(b):
        try:
            return True, _merge_ranges(a, b)
        except TypeError:  # bounds of different types: let the server decide
            return False, None
    return False, None


def merge(*filters: Document) -> Document:
    """One filter matching exactly the documents every one of `filters` matches."""
    merged: Document = {}
    leftovers: list[Document] = []
    for filter in filters:
        for field, condition in filter.items():
            if field not in merged:
                merged[field] = condition
                continue
            if field == "$and" and isinstance(condition, list):
                merged["$and"] = [*merged["$and"], *condition]
                continue
            ok, combined = _merge_condition(merged[field], condition)
            if ok:
                merged[field] = combined
            else:
                leftovers.append({field: condition})
    if leftovers:
        merged["$and"] = [*merged.get("$and", []), *leftovers]
    return _unwrap_and(merged)


def _unwrap_and(filter: Document) -> Document:
    """Lift `$and` clauses whose fields appear nowhere else into the top level."""
    clauses = filter.get("$and")
    if not isinstance(clauses, list):
        return filter
    flat = {key: value for key, value in filter.items() if key != "$and"}
    kept: list[Document] = []
    for clause in clauses:
        if isinstance(clause, dict) and len(clause) == 1:
            ((field, condition),) = clause.items()
            if field not in flat and not field.startswith("$"):
                flat[field] = condition
                continue
        kept.append(clause)
    if kept:
        flat["$and"] = kept
    return flat


def is_empty_match(filter: Document) -> bool:
    """True when the filter provably matches nothing (an empty `$in` on any field)."""
    return any(
        isinstance(condition, dict) and condition.get("$in") == [] for condition in filter.values()
    )


def split_for_planner(filter: Document, keep: str) -> tuple[Document, Document]:
    """(index-served part, rest): the embedded planner serves equalities plus ONE
    operator condition from a compound index, so every operator condition other than
    the one on `keep` moves to a later stage (e.g. a second `$match`)."""
    served: Document = {}
    rest: Document = {}
    for field, condition in filter.items():
        if field == keep or not (field.startswith("$") or isinstance(condition, dict)):
            served[field] = condition
        else:
            rest[field] = condition
    return served, rest


def matcher(filter: Document) -> Callable[[Document], bool] | None:
    """A test of whether a document matches `filter`, for the shapes row scopes take
    (equality and `$in` on top-level fields of hashable values); None for any other
    shape (ask the server instead)."""
    allowed_by_field: list[tuple[str, frozenset[Any]]] = []
    for field, condition in filter.items():
        allowed = None if field.startswith("$") else _allowed_values(condition)
        if allowed is None:
            return None
        try:
            allowed_by_field.append((field, frozenset(allowed)))
        except TypeError:
            return None

    def matches(document: Document) -> bool:
        return all(document.get(field) in allowed for field, allowed in allowed_by_field)

    return matches
