"""The schema is a contract: the committed schema.graphql must match the code, and every
persisted operation in queries/ must be valid against it."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import OperationDefinitionNode, parse, validate

from tests.support import default_schema

schema = default_schema()

ROOT = Path(__file__).resolve().parent.parent
QUERY_FILES = sorted((ROOT / "queries").glob("*.graphql"))


def test_committed_schema_matches_the_code():
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == schema.as_str() + "\n", (
        "schema.graphql is out of date: run `caregraph export-schema` and commit it"
    )


def test_there_are_persisted_operations():
    assert len(QUERY_FILES) >= 5


@pytest.mark.parametrize("path", QUERY_FILES, ids=lambda p: p.name)
def test_persisted_operation_is_valid_and_named_after_its_file(path: Path):
    document = parse(path.read_text())
    errors = validate(schema._schema, document)
    assert not errors, [error.message for error in errors]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1, "one operation per file"
    assert operations[0].name and operations[0].name.value == path.stem
