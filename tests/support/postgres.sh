#!/usr/bin/env bash
# A private PostgreSQL 15 for the tests: its own data directory under DIR, its
# own loopback port, nothing shared with a system cluster. PostgreSQL refuses
# to run as root, so as root the server runs as the `postgres` user.
#
#   postgres.sh start DIR PORT                  initdb (first time) and start a
#       primary on 127.0.0.1:PORT; role and database `chatcore`, password
#       `chatcore` (scram-sha-256 on TCP), and a replication role
#   postgres.sh standby DIR PORT PRIMARY_PORT   base backup of the primary into
#       DIR, started as a streaming standby named `standby`; the primary then
#       waits for it on every commit (synchronous_standby_names 'ANY 1 (standby)')
#   postgres.sh stop DIR                        fast shutdown (no error if down)
#   postgres.sh kill DIR                        kill -9 of the postmaster and
#       every backend (a crash: no shutdown checkpoint)
#   postgres.sh promote DIR                     promote a standby to primary
#   postgres.sh psql PORT SQL...                runs SQL as the superuser in the
#       database `chatcore`
#
# DIR is made by the caller (mktemp -d); this script owns DIR/data and DIR/log.
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "postgres.sh: no PostgreSQL server (apt-get install postgresql-15)" >&2; exit 2; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

own() { # the data directory must belong to the user running the server
  if [ "$(id -u)" = 0 ]; then chown -R postgres:postgres "$1"; fi
  chmod 700 "$1"
}

psql_as_super() { # PORT SQL... (each its own transaction), in database $PGDB
  local port=$1 args=()
  shift
  for sql in "$@"; do args+=(-c "$sql"); done
  as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
    -d "${PGDB:-postgres}" "${args[@]}"
}

wait_ready() { # PORT
  for _ in $(seq 1 100); do
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$1" && return 0
    sleep 0.1
  done
  echo "postgres.sh: server on port $1 not ready after 10 s" >&2
  return 1
}

start_server() { # DIR PORT
  as_owner "$bindir/pg_ctl" -D "$1/data" -l "$1/log" -w -t 30 \
    -o "-p $2 -k $1 -c listen_addresses=127.0.0.1" start >/dev/null
  wait_ready "$2"
}

cmd=${1:-}
case "$cmd" in
start)
  dir=$2 port=$3
  own "$dir"
  if [ ! -d "$dir/data" ]; then
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust \
      --auth-host=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$dir/data/postgresql.conf" <<EOF
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
max_wal_senders = 4
wal_level = replica
wal_keep_size = 256MB
EOF
    # chatcore connects with a password; the superuser (this script) without
    cat >"$dir/data/pg_hba.conf" <<EOF
local all postgres trust
host all postgres 127.0.0.1/32 trust
host replication replicator 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
EOF
    start_server "$dir" "$port"
    psql_as_super "$port" "CREATE ROLE chatcore LOGIN PASSWORD 'chatcore'" \
      "CREATE ROLE replicator LOGIN REPLICATION" \
      "CREATE DATABASE chatcore OWNER chatcore" "CREATE DATABASE other OWNER chatcore"
  else
    start_server "$dir" "$port"
  fi
  ;;
standby)
  dir=$2 port=$3 primary=$4
  own "$dir"
  as_owner "$bindir/pg_basebackup" -h 127.0.0.1 -p "$primary" -U replicator \
    -D "$dir/data" -R -X stream -c fast >/dev/null
  # -R wrote a primary_conninfo into postgresql.auto.conf; this later line wins
  cat >>"$dir/data/postgresql.auto.conf" <<EOF
primary_conninfo = 'host=127.0.0.1 port=$primary user=replicator application_name=standby'
EOF
  start_server "$dir" "$port"
  psql_as_super "$primary" "ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (standby)'" \
    "SELECT pg_reload_conf()" >/dev/null
  # wait until the primary counts it as a synchronous standby
  for _ in $(seq 1 100); do
    state=$(as_owner "$bindir/psql" -X -A -t -h 127.0.0.1 -p "$primary" -U postgres \
      -d postgres -c "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby'")
    [ "$state" = quorum ] || [ "$state" = sync ] && exit 0
    sleep 0.1
  done
  echo "postgres.sh: standby never became synchronous" >&2
  exit 1
  ;;
stop)
  dir=${2:?usage: postgres.sh stop DIR}
  [ -f "$dir/data/postmaster.pid" ] || exit 0
  as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
  ;;
kill)
  dir=$2
  [ -f "$dir/data/postmaster.pid" ] || exit 0
  pid=$(head -1 "$dir/data/postmaster.pid")
  # the postmaster and its children, at once
  pkill -9 -P "$pid" 2>/dev/null || true
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  ;;
promote)
  dir=$2
  as_owner "$bindir/pg_ctl" -D "$dir/data" -w -t 30 promote >/dev/null
  ;;
psql)
  shift
  PGDB=chatcore psql_as_super "$@"
  ;;
*)
  echo "usage: postgres.sh start|standby|stop|kill|promote|psql ..." >&2
  exit 2
  ;;
esac
