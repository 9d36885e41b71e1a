#!/usr/bin/env bash
# Start / stop a throwaway PostgreSQL (Debian package) on 127.0.0.1 for the distributed-search tests.
#   source .ci/postgres.sh; pg_start   -> exports CASCADE_TEST_POSTGRES_URL
#   pg_stop                            -> stops the server and removes its data directory
# Installs the Debian package when it is missing (CI machines start with Python only).
set -euo pipefail

_pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

pg_start() {
  if [ -z "$(_pg_bin)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql >/dev/null
  fi
  local bin; bin="$(_pg_bin)"
  PG_DIR="$(mktemp -d /tmp/cascade-pg.XXXXXX)"
  chown postgres "$PG_DIR"
  local pw; pw="$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "$pw" > "$PG_DIR/pw"; chown postgres "$PG_DIR/pw"; chmod 600 "$PG_DIR/pw"
  PG_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  runuser -u postgres -- "$bin/initdb" -D "$PG_DIR/data" -U cascade --auth=scram-sha-256 --pwfile="$PG_DIR/pw" >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$PG_DIR -c max_connections=100" start >/dev/null
  PGPASSWORD="$pw" psql -h 127.0.0.1 -p "$PG_PORT" -U cascade -d postgres -qc "CREATE DATABASE cascade_test" >/dev/null
  export PG_DIR PG_PORT
  export CASCADE_TEST_POSTGRES_URL="postgresql+psycopg://cascade:$pw@127.0.0.1:$PG_PORT/cascade_test"
  echo "postgres: listening on 127.0.0.1:$PG_PORT ($("$bin/postgres" --version))"
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  runuser -u postgres -- "$(_pg_bin)/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
