#!/usr/bin/env bash
# The queue and presence backends side by side (docs/benchmarks.md): starts a
# single nats-server, a 3-node JetStream cluster and a redis-server on private
# loopback ports in a temp dir, runs chatcore-backend-bench on each backend
# (the in-process ones first, in the same session), and stops them.
#
#   bash bench/run-backend-benchmarks.sh BUILD_DIR [MESSAGES] [RATE]
set -euo pipefail
build=${1:?usage: run-backend-benchmarks.sh BUILD_DIR [MESSAGES] [RATE]}
n=${2:-100000}
rate=${3:-5000}
here=$(cd "$(dirname "$0")/.." && pwd)
bench="$build/bench/chatcore-backend-bench"
[ -x "$bench" ] || { echo "no $bench: build first" >&2; exit 2; }
dir=$(mktemp -d)
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats="$here/tests/support/nats.sh"
cleanup() { bash "$nats" stopall "$dir" || true; bash "$here/tests/support/redis.sh" stop "$dir/redis" || true; rm -rf "$dir"; }
trap cleanup EXIT
single=$(port)
bash "$nats" start "$dir" single "$single"
p=() r=()
for i in 0 1 2; do p[$i]=$(port); r[$i]=$(port); done
for i in 0 1 2; do
  bash "$nats" start "$dir" "c$i" "${p[$i]}" "${r[$i]}" "${r[$(((i + 1) % 3))]}" "${r[$(((i + 2) % 3))]}"
done
mkdir -p "$dir/redis"
rport=$(port)
bash "$here/tests/support/redis.sh" start "$dir/redis" "$rport"
cluster="nats://127.0.0.1:${p[0]},nats://127.0.0.1:${p[1]},nats://127.0.0.1:${p[2]}"
sleep 2 # the cluster elects its JetStream leader

echo "# saturated: $n messages of 100 B, 1000 in flight"
"$bench" queue memory --messages "$n"
"$bench" queue nats --url "nats://127.0.0.1:$single" --replicas 0 --messages "$n"
"$bench" queue nats --url "nats://127.0.0.1:$single" --replicas 1 --messages "$n"
"$bench" queue nats --url "$cluster" --replicas 3 --messages "$n"
echo "# paced: $rate messages/s"
m=$((rate * 5))
"$bench" queue memory --messages "$m" --rate "$rate"
"$bench" queue nats --url "nats://127.0.0.1:$single" --replicas 0 --messages "$m" --rate "$rate"
"$bench" queue nats --url "nats://127.0.0.1:$single" --replicas 1 --messages "$m" --rate "$rate"
"$bench" queue nats --url "$cluster" --replicas 3 --messages "$m" --rate "$rate"
echo "# paced, written at once (cc_nats_options_set_send_asap)"
"$bench" queue nats --url "nats://127.0.0.1:$single" --replicas 0 --messages "$m" --rate "$rate" --send-asap 1
"$bench" queue nats --url "nats://127.0.0.1:$single" --replicas 1 --messages "$m" --rate "$rate" --send-asap 1
"$bench" queue nats --url "$cluster" --replicas 3 --messages "$m" --rate "$rate" --send-asap 1
echo "# presence: $n device sets over 10,000 users, 1000 in flight"
"$bench" presence memory --updates "$n"
"$bench" presence redis --redis "127.0.0.1:$rport" --updates "$n"
