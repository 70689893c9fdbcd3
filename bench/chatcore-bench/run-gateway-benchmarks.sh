#!/usr/bin/env bash
# Runs the gateway measurements of docs/benchmarks-gateway.md, each against a
# freshly started chatcore-server (so every RSS baseline is a clean process),
# the server pinned to one CPU and the bench to the other. Loopback only; every
# run is bounded by `timeout`.
#
#   bench/chatcore-bench/run-gateway-benchmarks.sh [BUILD_DIR] [OUT_DIR] [NAME...]
#
# BUILD_DIR defaults to build-bench (meson setup build-bench -Dbuildtype=release),
# OUT_DIR to /tmp/chatcore-bench-results; NAMEs pick measurements (default: all,
# see `measurements` below). Each measurement leaves NAME.json (the bench's
# --json), NAME.log (progress and summary) and NAME.csv (one row a second).
set -euo pipefail

BUILD=${1:-build-bench}
OUT=${2:-/tmp/chatcore-bench-results}
shift $(($# > 2 ? 2 : $#))
SERVER=$BUILD/examples/chatcore-server/chatcore-server
BENCH=$BUILD/bench/chatcore-bench/chatcore-bench
SECRET=bench-secret-0123456789abcdef0123456789
SERVER_CPU=${SERVER_CPU:-0}
BENCH_CPU=${BENCH_CPU:-1}
PORT=${PORT_BASE:-18600}

for exe in "$SERVER" "$BENCH"; do
  [ -x "$exe" ] || { echo "missing $exe: build first (ninja -C $BUILD)" >&2; exit 2; }
done
mkdir -p "$OUT"

# shellcheck source=bench/chatcore-bench/bench-common.sh
. "$(dirname "$0")/bench-common.sh"
make_certs
trap stop_server EXIT

measure() { # NAME "server flags" bench args...
  local name=$1 sflags=$2
  shift 2
  settle
  # shellcheck disable=SC2086
  start_server "" $sflags
  echo "== $name: taskset -c $BENCH_CPU chatcore-bench $* --url ws://127.0.0.1:$PORT/ws" \
    "--jwt-secret SECRET --server-pid PID --json --csv $name.csv"
  rm -f "$OUT/$name.csv"
  timeout 600 taskset -c "$BENCH_CPU" "$BENCH" "$@" --url "ws://127.0.0.1:$PORT/ws" \
    --jwt-secret "$SECRET" --server-pid "$SPID" --json --csv "$OUT/$name.csv" \
    >"$OUT/$name.json" 2>"$OUT/$name.log" || echo "   (exit status $?)"
  grep -v '^\[' "$OUT/$name.log" | sed 's/^/   /'
  stop_server
}

run_one() {
  case $1 in
  idle) measure idle "" idle --connections 19000 --rate 2000 --duration 30 ;;
  # The price of one heartbeat: the server pings every connection each second
  # (19,000 pings/s); CPU / 19,000 is one ping and its pong.
  idle-ping-1s) measure idle-ping-1s "--ping-interval-ms 1000 --idle-timeout-ms 5000" \
    idle --connections 19000 --rate 2000 --duration 30 ;;
  idle-tls) measure idle-tls "--tls-cert $OUT/ec.crt --tls-key $OUT/ec.key" \
    idle --connections 19000 --rate 1000 --duration 30 --tls ;;
  pingpong) measure pingpong "" pingpong --connections 100 --duration 10 ;;
  pingpong-command) measure pingpong-command "" pingpong --connections 100 --duration 10 \
    --app-ping ;;
  pingpong-1000) measure pingpong-1000 "" pingpong --connections 1000 --duration 10 ;;
  pingpong-1000-command) measure pingpong-1000-command "" pingpong --connections 1000 \
    --duration 10 --app-ping ;;
  pingpong-1000-command-proto) measure pingpong-1000-command-proto "" pingpong \
    --connections 1000 --duration 10 --app-ping --proto proto ;;
  handshake) measure handshake "" handshake --connections 64 --duration 10 ;;
  handshake-tls-ec) measure handshake-tls-ec "--tls-cert $OUT/ec.crt --tls-key $OUT/ec.key" \
    handshake --connections 64 --duration 10 --tls ;;
  # Two workers: with one bench loop the server and the bench fall into
  # lockstep on RSA (each idles while the other answers a batch), and neither
  # core is saturated. Plain and ECDSA runs are bench-bound either way.
  handshake-tls-rsa) measure handshake-tls-rsa \
    "--tls-cert $OUT/rsa.crt --tls-key $OUT/rsa.key" \
    handshake --connections 64 --duration 10 --tls --workers 2 ;;
  *) echo "unknown measurement $1" >&2; exit 2 ;;
  esac
}

# Held connections first: a handshake run leaves ~100k sockets in TIME_WAIT
# for a minute, which would blur the kernel figures of a run right after it.
measurements=(idle idle-ping-1s idle-tls pingpong pingpong-command pingpong-1000 pingpong-1000-command
  pingpong-1000-command-proto handshake handshake-tls-ec handshake-tls-rsa)
[ $# -gt 0 ] && measurements=("$@")
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
  "$(uname -r), fd limit $(ulimit -Hn); server on CPU $SERVER_CPU, bench on CPU $BENCH_CPU"
for m in "${measurements[@]}"; do
  run_one "$m"
done
echo "results in $OUT"
