#!/usr/bin/env bash
# Runs `python3 -m pytest ARGS...` with a private PostgreSQL 15 (tests/support/
# postgres.sh) on a free loopback port: every chatcore-server the tests start
# without an explicit --db keeps its chats in a fresh database there
# (conftest.py: db_args); with CHATCORE_TEST_PG_SERVERS=2 in the environment,
# in two databases standing for two servers (--db-server). The server is
# stopped and its directory removed at the end, whatever happens.
set -euo pipefail
tests=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/chatcore-pg-it-XXXXXX")
port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  bash "$tests/support/postgres.sh" stop "$dir"
  rm -rf "$dir"
}
trap cleanup EXIT
bash "$tests/support/postgres.sh" start "$dir" "$port"
export CHATCORE_TEST_PG_PORT=$port CHATCORE_TEST_PG_SCRIPT=$tests/support/postgres.sh
/usr/bin/python3 -m pytest "$@"
