# Sourced by scripts/test: the Apollo Client test (tests/test_apollo_client.py) runs a
# real Apollo Client under Node and installs its npm packages itself (npm ci, from
# tests/apollo/package-lock.json); install Debian's Node.js and npm when a machine has
# none (bookworm's Node 18 is enough).
set -euo pipefail

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  _as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  _as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq nodejs npm >/dev/null
fi
