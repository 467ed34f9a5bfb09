# Sourced by scripts/test before pytest: lint, formatting and types, so a type or lint
# error fails .ci/run like a failing test does. Each is quick (mypy: about a minute on a
# fresh checkout, seconds with its cache); configuration is in pyproject.toml.
set -euo pipefail

echo "Static checks: ruff check, ruff format --check, mypy"
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
.venv/bin/python -m mypy
