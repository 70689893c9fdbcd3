#!/usr/bin/env bash
# Runs the chat measurements of docs/benchmarks-chat.md, each against a freshly
# started chatcore-server (pinned to one CPU, the bench to the other), loopback
# only, every run bounded by `timeout`.
#
#   bench/chatcore-bench/run-chat-benchmarks.sh [BUILD_DIR] [OUT_DIR] [NAME...]
#
# BUILD_DIR defaults to build-bench-rel (meson setup build-bench-rel
# -Dbuildtype=release), OUT_DIR to /tmp/chatcore-chat-results; NAMEs pick
# measurements (default: all, see run_one). Each leaves NAME.json (the bench's
# --json), NAME.log (progress and summary), NAME.csv (a row a second), NAME.png
# (NAME.csv drawn by plot.sh, if gnuplot is installed) and the server's log.
# File databases go to DB_DIR (default OUT_DIR), removed after each run. The
# server runs with --message-rate 1000000 --message-burst 1000000: the default
# 20 messages/s per user would answer RATE_LIMITED.
set -euo pipefail

BUILD=${1:-build-bench-rel}
OUT=${2:-/tmp/chatcore-chat-results}
shift $(($# > 2 ? 2 : $#))
SERVER=$BUILD/examples/chatcore-server/chatcore-server
BENCH=$BUILD/bench/chatcore-bench/chatcore-bench
PLOT=$(dirname "$0")/plot.sh
SECRET=bench-secret-0123456789abcdef0123456789
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
DURATION=${DURATION:-10}
PORT=${PORT_BASE:-18800}

for exe in "$SERVER" "$BENCH"; do
  [ -x "$exe" ] || { echo "missing $exe: build first (ninja -C $BUILD)" >&2; exit 2; }
done
mkdir -p "$OUT"
DB_DIR=${DB_DIR:-$OUT}
# shellcheck source=bench/chatcore-bench/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
make_certs
PG_DIR=
PG_PORT=
# A private PostgreSQL for the *-postgres measurements (tests/support/postgres.sh),
# started on first use, stopped at exit; each measurement gets a fresh database.
pg_db() { # NAME -> a postgresql:// URI
  local script
  script=$(dirname "$0")/../../tests/support/postgres.sh
  if [ -z "$PG_DIR" ]; then
    PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/chatcore-bench-pg-XXXXXX")
    PG_PORT=$((PORT + 50))
    bash "$script" start "$PG_DIR" "$PG_PORT" >&2
  fi
  local db=bench_${1//[^a-z0-9]/_}_$RANDOM
  bash "$script" psql "$PG_PORT" "CREATE DATABASE $db OWNER chatcore" >&2
  echo "postgresql://chatcore:chatcore@127.0.0.1:$PG_PORT/$db"
}
cleanup() {
  stop_server
  if [ -n "$PG_DIR" ]; then
    bash "$(dirname "$0")/../../tests/support/postgres.sh" stop "$PG_DIR"
    rm -rf "$PG_DIR"
  fi
}
trap cleanup EXIT
TLS_FLAGS=

# /proc/stat's busy and total jiffies of CPUs 0 and 1: "b0 t0 b1 t1".
cpu_sample() {
  awk '/^cpu[01] / {b = $2 + $3 + $4 + $7 + $8; t = b + $5 + $6; printf "%d %d ", b, t}' \
    /proc/stat
}

# Busy % of each CPU between two samples.
cpu_busy() { # "sample a" "sample b"
  echo "$1 $2" | awk '{printf "cpu0 %.0f%% cpu1 %.0f%%", 100 * ($5 - $1) / ($6 - $2),
    100 * ($7 - $3) / ($8 - $4)}'
}

# Other sessions may share this machine: wait (at most 120 s) until both CPUs
# have been nearly idle for two seconds, so a run does not start under
# someone else's build.
quiet() {
  for _ in $(seq 60); do
    local a b
    a=$(cpu_sample)
    sleep 2
    b=$(cpu_sample)
    echo "$a $b" | awk '{exit !((($5 - $1) / ($6 - $2) < 0.1) && (($7 - $3) / ($8 - $4) < 0.1))}' &&
      return
  done
  echo "   (the machine did not go quiet: $(cpu_busy "$a" "$b") busy)"
}

measure() { # NAME DB bench args...
  local name=$1 db=$2
  shift 2
  [ -n "$TLS_FLAGS" ] && set -- "$@" --tls
  settle
  quiet
  [ "$db" = file ] && db="$DB_DIR/chat-$name.db" && rm -f "$db" "$db-wal" "$db-shm"
  [ "$db" = postgres ] && db=$(pg_db "$name")
  # shellcheck disable=SC2086
  start_server "$db" --message-rate 1000000 --message-burst 1000000 $TLS_FLAGS
  local scheme=ws
  [ -n "$TLS_FLAGS" ] && scheme=wss
  echo "== $name: taskset -c $BENCH_CPU chatcore-bench $* --duration $DURATION" \
    "--url $scheme://127.0.0.1:$PORT/ws --jwt-secret SECRET --server-pid PID --json" \
    "(server --db $db)"
  rm -f "$OUT/$name.csv"
  timeout 600 taskset -c "$BENCH_CPU" "$BENCH" "$@" --duration "$DURATION" \
    --url "$scheme://127.0.0.1:$PORT/ws" --jwt-secret "$SECRET" --server-pid "$SPID" --json \
    --csv "$OUT/$name.csv" >"$OUT/$name.json" 2>"$OUT/$name.log" &
  local bpid=$!
  # The whole machine's CPU from the bench's first "run" line (a second into
  # the measured phase) to its end (the stop phase is short): what the server
  # and bench figures miss (softirq work, other processes).
  local a="" b=""
  while kill -0 "$bpid" 2>/dev/null; do
    if [ -z "$a" ] && grep -q '] run ' "$OUT/$name.log" 2>/dev/null; then a=$(cpu_sample); fi
    sleep 0.2
  done
  b=$(cpu_sample)
  wait "$bpid" || echo "   (exit status $?)"
  if [ -n "$a" ] && [ -n "$b" ]; then
    echo "   machine busy over the run: $(cpu_busy "$a" "$b")" | tee "$OUT/$name.cpu"
  fi
  grep -E '^  (sent|acked|delivered|delivery|ack lat|seq|server CPU|bench CPU|error)' \
    "$OUT/$name.log" | sed 's/^/   /'
  stop_server
  case $db in :memory: | postgresql://*) ;; *) rm -f "$db" "$db-wal" "$db-shm" ;; esac
  if command -v gnuplot >/dev/null; then
    "$PLOT" "$OUT/$name.csv" "$OUT/$name.png" "$name" >/dev/null 2>&1 ||
      echo "   (warning: no $OUT/$name.png: plot.sh failed)" >&2
  fi
  return 0
}

run_one() {
  # A name with the prefix tls- runs the same measurement over TLS 1.3 (the P-256
  # certificate above), e.g. tls-group-mem-5, tls-persist-file.
  local name=$1 m=${1#tls-}
  TLS_FLAGS=
  [ "$m" != "$name" ] && TLS_FLAGS="--tls-cert $OUT/ec.crt --tls-key $OUT/ec.key"
  case $m in
  # Rooms of 100 (2,000 connections: 20 groups), every member sending.
  group-mem-*) measure "$name" :memory: group --connections 2000 --room-size 100 \
    --rate "${m#group-mem-}" ;;
  group-file-*) measure "$name" file group --connections 2000 --room-size 100 \
    --rate "${m#group-file-}" ;;
  group-proto-*) measure "$name" :memory: group --connections 2000 --room-size 100 \
    --rate "${m#group-proto-}" --proto proto ;;
  # One sender per room of 100, at up to 190 msg/s (the gateway's frame limit).
  broadcast-*) measure "$name" :memory: broadcast --connections 2000 --room-size 100 \
    --rate "${m#broadcast-}" ;;
  # Direct chats at a fixed rate per sender.
  direct-file-*) measure "$name" file direct --connections 2000 --rate "${m#direct-file-}" ;;
  # Durable acks as fast as they come: 2,000 connections, 16 in flight each.
  persist-file) measure "$name" file persist --connections 2000 --inflight 16 ;;
  persist-file-proto) measure "$name" file persist --connections 2000 --inflight 16 \
    --proto proto ;;
  persist-mem) measure "$name" :memory: persist --connections 2000 --inflight 16 ;;
  # The same on PostgreSQL (a private server on this machine, started here).
  persist-postgres) measure "$name" postgres persist --connections 2000 --inflight 16 ;;
  *) echo "unknown measurement $1" >&2; exit 2 ;;
  esac
}

measurements=(group-mem-0.1 group-mem-0.25 group-mem-0.5 group-mem-1 group-mem-2 group-mem-3
  group-mem-5 group-file-0.5 group-file-1 group-file-2
  group-file-3 group-proto-3 broadcast-50 broadcast-190 direct-file-20 persist-file
  persist-file-proto persist-mem persist-postgres tls-group-mem-0.5 tls-group-mem-5
  tls-persist-file)
[ $# -gt 0 ] && measurements=("$@")
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "$(uname -r); server on CPU $SERVER_CPU, bench on CPU $BENCH_CPU; ${DURATION}s each"
for m in "${measurements[@]}"; do
  run_one "$m"
done
echo "results in $OUT"
