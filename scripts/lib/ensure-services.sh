# Sourced by scripts/test: make sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379)
# answer, installing them from Debian packages and starting them when a machine is bare.
set -euo pipefail

_as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
_apt_install() {
  _as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq "$@" >/dev/null
}
_wait_for() {  # _wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
}

if ! command -v redis-cli >/dev/null || ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || _apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/caregraph-redis.log
  _wait_for 20 redis-cli -h 127.0.0.1 -p 6379 ping || { echo "Redis did not start" >&2; exit 1; }
fi

if ! command -v pg_isready >/dev/null || ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  command -v pg_ctlcluster >/dev/null || _apt_install postgresql
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  _as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  _wait_for 60 pg_isready -h 127.0.0.1 -p 5432 -q || { echo "PostgreSQL did not start" >&2; exit 1; }
fi
# The tests connect as postgres/postgres over TCP: fine under trust auth, and a fresh
# Debian install (password auth on 127.0.0.1) gets that password set once here.
if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
  _as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
fi
