#!/usr/bin/env bash
# Ensures PostgreSQL accepts connections on 127.0.0.1:5432 (or $PG_PORT) as
# user postgres, without a password, to a database named test: what the
# order example's payment service and its tests use. It starts Debian's
# PostgreSQL when it is installed but not running, installs it first when
# it is missing and we are root, and, as root, creates the database and
# lets local TCP connections in without a password (trust) when they are
# not yet. Anything else fails with what to do.
set -euo pipefail

host=127.0.0.1
port=${PG_PORT:-5432}
db=test
wait_seconds=${PG_WAIT_SECONDS:-60}

listening() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
usable() { psql -h "$host" -p "$port" -U postgres -d "$db" -Atc 'SELECT 1' >/dev/null 2>&1; }

fail() {
  echo "ensure-postgres: $*" >&2
  echo "ensure-postgres: to run the order example, let user postgres connect to database $db on $host:$port" >&2
  echo "ensure-postgres: without a password, e.g. as root: apt-get install postgresql, a 'host all all 127.0.0.1/32 trust'" >&2
  echo "ensure-postgres: line first in pg_hba.conf, and createdb $db." >&2
  exit 1
}

as_postgres() { su postgres -s /bin/sh -c "$*"; }

if ! command -v pg_ctlcluster >/dev/null; then
  [ "$(id -u)" = 0 ] || fail "PostgreSQL is not installed and we are not root to install it"
  command -v apt-get >/dev/null || fail "PostgreSQL is not installed and there is no apt-get"
  echo "ensure-postgres: installing Debian's postgresql" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q postgresql >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q postgresql >/dev/null || fail "apt-get install postgresql failed"
  fi
fi

if ! listening; then
  [ "$(id -u)" = 0 ] || fail "PostgreSQL is installed but not running, and only root can start it"
  for version in $(ls /etc/postgresql 2>/dev/null); do
    for cluster in $(ls "/etc/postgresql/$version"); do
      echo "ensure-postgres: starting cluster $version/$cluster" >&2
      pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
    done
  done
  for ((i = 0; i < wait_seconds * 4; i++)); do
    listening && break
    sleep 0.25
  done
  listening || fail "PostgreSQL did not accept connections on $host:$port within ${wait_seconds}s"
fi

usable && exit 0
[ "$(id -u)" = 0 ] || fail "user postgres cannot connect to database $db, and only root can set that up"
for hba in /etc/postgresql/*/*/pg_hba.conf; do
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    echo "ensure-postgres: letting local TCP connections in without a password ($hba)" >&2
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  fi
done
as_postgres "psql -Atc 'SELECT pg_reload_conf()'" >/dev/null
if ! as_postgres "psql -Atc \"SELECT 1 FROM pg_database WHERE datname = '$db'\"" | grep -q 1; then
  echo "ensure-postgres: creating database $db" >&2
  as_postgres "createdb $db"
fi
for ((i = 0; i < 20; i++)); do
  usable && exit 0
  sleep 0.25
done
fail "user postgres still cannot connect to database $db on $host:$port"
