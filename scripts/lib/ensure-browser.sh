# Sourced by scripts/test: the GraphiQL browser test drives Debian's Chromium
# (/usr/bin/chromium) headless; install it when a machine has none. Playwright's own
# browser download is never used: these machines reach package registries only.
set -euo pipefail

if [ ! -x /usr/bin/chromium ]; then
  _as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  _as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq chromium >/dev/null
fi
