#!/usr/bin/env bash
# A self-check of the chat scenarios (meson test bench-chat-selfcheck, suite
# unit): a chatcore-server on a free loopback port, then short group (JSON,
# :memory:) and persist (protobuf, a file database) runs. It asserts what must
# hold on any machine — the chats were set up, messages were delivered, no seq
# was missing, duplicated or out of order, no error reply — and nothing about
# speed. With gnuplot on PATH it also renders the group run's --csv with
# plot.sh (a PNG over 1 KB) and checks that plot.sh refuses a foreign CSV.
#
#   selfcheck.sh SERVER BENCH
set -euo pipefail
SERVER=$1
BENCH=$2
PLOT=$(dirname "$0")/plot.sh
SECRET=bench-secret-0123456789abcdef0123456789
TMP=$(mktemp -d)
SPID=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_server() { # db
  for _ in 1 2 3 4 5; do
    PORT=$(free_port)
    timeout 120 "$SERVER" --listen "127.0.0.1:$PORT" --jwt-secret "$SECRET" --db "$1" \
      --message-rate 1000000 --message-burst 1000000 >"$TMP/server.log" 2>&1 &
    SPID=$!
    for _ in $(seq 100); do
      grep -q listening "$TMP/server.log" 2>/dev/null && return 0
      kill -0 "$SPID" 2>/dev/null || break
      sleep 0.05
    done
    kill "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
  done
  cat "$TMP/server.log" >&2
  return 1
}

stop_server() {
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=
}

check() { # name chats json-file
  python3 - "$@" <<'PY'
import json, sys
name, chats, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = json.load(open(path))
problems = []
if r["chats"] != chats: problems.append("chats %d, expected %d" % (r["chats"], chats))
if r["delivered"] <= 0: problems.append("nothing delivered")
if r["acked"] <= 0: problems.append("nothing acked")
if r["checked"] < r["delivered"]: problems.append("fewer checked than delivered")
if r["violations"] != 0: problems.append("%d seq violations" % r["violations"])
if r["errors"] != 0: problems.append("errors %s" % r["errors_by_kind"])
for p in problems: print("FAIL %s: %s" % (name, p))
print("%s: %d delivered, %d checked, %d violations" % (name, r["delivered"], r["checked"], r["violations"]))
sys.exit(1 if problems else 0)
PY
}

# plot.sh renders a PNG (its signature, over 1 KB) and answers a CSV without
# the bench's columns with exit status 2 and a message.
check_plot() { # csv
  local rc=0
  "$PLOT" "$1" "$TMP/plot.png" "selfcheck group" 2>"$TMP/plot.log" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$TMP/plot.log" >&2
    echo "FAIL plot: plot.sh exited $rc"
    return 1
  fi
  if [ "$(head -c 4 "$TMP/plot.png" | od -An -tx1 | tr -d ' \n')" != 89504e47 ]; then
    echo "FAIL plot: $TMP/plot.png is not a PNG"
    return 1
  fi
  local size
  size=$(stat -c %s "$TMP/plot.png")
  if [ "$size" -le 1024 ]; then
    echo "FAIL plot: the PNG has only $size bytes"
    return 1
  fi
  printf 'time,rate\n1.0,5\n' >"$TMP/foreign.csv"
  rc=0
  "$PLOT" "$TMP/foreign.csv" "$TMP/foreign.png" 2>"$TMP/foreign.log" || rc=$?
  if [ "$rc" -ne 2 ] || ! grep -q 'no column' "$TMP/foreign.log"; then
    cat "$TMP/foreign.log" >&2
    echo "FAIL plot: a foreign CSV gave exit status $rc, expected 2 and a message"
    return 1
  fi
  echo "plot: a $size-byte PNG; a foreign CSV refused"
}

checks=2
fails=0
start_server :memory:
timeout 60 "$BENCH" group --url "ws://127.0.0.1:$PORT/ws" --jwt-secret "$SECRET" \
  --connections 40 --room-size 10 --rate 20 --duration 2 --json --csv "$TMP/group.csv" \
  >"$TMP/group.json" 2>"$TMP/group.log" || { cat "$TMP/group.log" >&2; fails=$((fails + 1)); }
check group 4 "$TMP/group.json" || { cat "$TMP/group.log" >&2; fails=$((fails + 1)); }
stop_server
if command -v gnuplot >/dev/null; then
  checks=$((checks + 1))
  check_plot "$TMP/group.csv" || fails=$((fails + 1))
else
  echo "plot: skipped, no gnuplot on PATH (Debian: apt-get install gnuplot-nox)"
fi

start_server "$TMP/chat.db"
timeout 60 "$BENCH" persist --url "ws://127.0.0.1:$PORT/ws" --jwt-secret "$SECRET" \
  --connections 20 --inflight 4 --rate 50 --duration 2 --proto proto --json \
  >"$TMP/persist.json" 2>"$TMP/persist.log" || { cat "$TMP/persist.log" >&2; fails=$((fails + 1)); }
check persist 10 "$TMP/persist.json" || { cat "$TMP/persist.log" >&2; fails=$((fails + 1)); }
stop_server

echo "$((checks - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
