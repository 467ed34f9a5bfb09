# Sourced by scripts/serve and scripts/test: create .venv and install the project with
# its embedded and dev extras. Reinstalls only when pyproject.toml changes.
set -euo pipefail

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "CareGraph needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "Creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  # The first install takes about two minutes: say so, and let pip show what it fetches.
  echo "Installing CareGraph and its dependencies into .venv (first run: about 2 minutes)..."
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  # One line per package fetched; the whole log is kept and shown if pip fails.
  status=0
  .venv/bin/python -m pip install --disable-pip-version-check -e '.[embedded,dev]' 2>&1 \
    | tee .venv/pip-install.log \
    | { grep --line-buffered -E '^(Collecting|Successfully installed)' || true; } || status=$?
  if [ "$status" != 0 ]; then
    tail -n 40 .venv/pip-install.log >&2
    echo "Installing CareGraph failed (full log: .venv/pip-install.log)" >&2
    exit 1
  fi
  rm -f .venv/.installed-* && touch "$stamp"
  echo "Installed."
fi
