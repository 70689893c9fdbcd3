#!/usr/bin/env bash
# The split deployment on one machine (docs/split.md): installs what it needs
# on a fresh Debian 12 machine, builds, and starts on loopback ports in a temp
# directory a 3-node NATS JetStream cluster, Redis, PostgreSQL (a primary and
# a synchronous standby), two chatcore-service and two chatcore-gateway
# processes; waits until all are ready and prints each gateway's WebSocket URL
# on a line of its own.
#
#   bash scripts/cluster.sh          start (the gateways serve the browser
#                                    client and --dev-login, as scripts/run.sh)
#   bash scripts/cluster.sh stop     stop everything it started, and nothing else
#
#   CHATCORE_JWT_SECRET   the gateways' secret (default: made once, kept in the
#                         cluster's directory)
#   CHATCORE_SKIP_APT=1   skip apt-get (packages already installed)
#   CHATCORE_CLUSTER_DIR  where it keeps its state (default /tmp/chatcore-cluster)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${CHATCORE_CLUSTER_DIR:-/tmp/chatcore-cluster}
support=$root/tests/support

stop() {
  [ -d "$dir" ] || { echo "cluster.sh: nothing running ($dir does not exist)"; return 0; }
  for pidf in "$dir"/*.pid; do
    [ -f "$pidf" ] || continue
    kill -TERM "$(cat "$pidf")" 2>/dev/null || true
  done
  for pidf in "$dir"/*.pid; do
    [ -f "$pidf" ] || continue
    for _ in $(seq 1 100); do kill -0 "$(cat "$pidf")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$pidf"
  done
  bash "$support/nats.sh" stopall "$dir/nats" || true
  bash "$support/redis.sh" stop "$dir/redis" || true
  bash "$support/postgres.sh" stop "$dir/pg-standby" || true
  bash "$support/postgres.sh" stop "$dir/pg" || true
  rm -rf "$dir"
  echo "cluster.sh: stopped"
}

if [ "${1:-}" = stop ]; then
  stop
  exit 0
fi
[ -z "${1:-}" ] || { echo "usage: cluster.sh [stop]" >&2; exit 2; }
[ ! -d "$dir" ] || { echo "cluster.sh: already running in $dir (cluster.sh stop first)" >&2; exit 2; }

if [ "${CHATCORE_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2046
  apt-get install -y -q --no-install-recommends $(grep -v '^#' scripts/debian-packages.txt) \
    nats-server redis-server postgresql-15
fi
[ -d build-run ] || meson setup build-run -Dbuildtype=release -Dtests=disabled
meson compile -C build-run chatcore-gateway chatcore-service
bin=$root/build-run/examples/chatcore-server

mkdir -p "$dir"/nats "$dir"/redis "$dir"/pg "$dir"/pg-standby
chmod 755 "$dir"
trap 'echo "cluster.sh: failed; stopping what started" >&2; stop' ERR
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

secret=${CHATCORE_JWT_SECRET:-}
if [ -z "$secret" ]; then
  secret=$(openssl rand -hex 32)
  (umask 077; echo "$secret" >"$dir/jwt-secret")
fi

np=() nr=()
for i in 0 1 2; do np[$i]=$(port); nr[$i]=$(port); done
for i in 0 1 2; do
  bash "$support/nats.sh" start "$dir/nats" "nats$i" "${np[$i]}" "${nr[$i]}" \
    "${nr[$(((i + 1) % 3))]}" "${nr[$(((i + 2) % 3))]}"
done
nats="nats://127.0.0.1:${np[0]},nats://127.0.0.1:${np[1]},nats://127.0.0.1:${np[2]}"
rport=$(port)
bash "$support/redis.sh" start "$dir/redis" "$rport"
pg=$(port) pg2=$(port)
bash "$support/postgres.sh" start "$dir/pg" "$pg" >/dev/null
bash "$support/postgres.sh" standby "$dir/pg-standby" "$pg2" "$pg" >/dev/null
# Both hosts: libpq follows the primary (target_session_attrs) after a promotion.
db="postgresql://chatcore:chatcore@127.0.0.1:$pg,127.0.0.1:$pg2/chatcore?target_session_attrs=read-write"

for i in 1 2; do
  "$bin/chatcore-service" --nats "$nats" --db "$db" --redis "127.0.0.1:$rport" \
    --node-id "$i" >"$dir/service$i.log" 2>&1 &
  echo $! >"$dir/service$i.pid"
done
gw=()
for i in 1 2; do
  gw[$i]=$(port)
  "$bin/chatcore-gateway" --nats "$nats" --listen "127.0.0.1:${gw[$i]}" \
    --jwt-secret "$secret" --node-id "$i" --dev-login >"$dir/gateway$i.log" 2>&1 &
  echo $! >"$dir/gateway$i.pid"
done
ready() { grep -q "$2" "$dir/$1.log" 2>/dev/null; }
for _ in $(seq 1 200); do
  if ready service1 ready && ready service2 ready && ready gateway1 listening &&
     ready gateway2 listening; then
    trap - ERR
    echo "cluster.sh: up in $dir (3 NATS nodes, Redis, PostgreSQL primary + standby,"
    echo "  2 services, 2 gateways; logs there). The gateways' WebSocket URLs:"
    for i in 1 2; do echo "ws://127.0.0.1:${gw[$i]}/ws"; done
    echo "Browser client: http://127.0.0.1:${gw[1]}/ and http://127.0.0.1:${gw[2]}/ (log in as any name)."
    echo "Stop: bash scripts/cluster.sh stop"
    exit 0
  fi
  for p in "$dir"/*.pid; do
    kill -0 "$(cat "$p")" 2>/dev/null || { echo "cluster.sh: $(basename "$p" .pid) exited:" >&2; tail -5 "${p%.pid}.log" >&2; false; }
  done
  sleep 0.1
done
echo "cluster.sh: not ready in 20 s (logs in $dir)" >&2
false
