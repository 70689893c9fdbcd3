#!/usr/bin/env bash
# Private nats-server nodes for the tests: each in its own directory under DIR,
# on its own loopback ports, JetStream stores in that directory.
#
#   nats.sh start DIR NAME CLIENT_PORT [CLUSTER_PORT ROUTE_PORT... ] [-- TOKEN]
#       start node NAME (a JetStream cluster member when CLUSTER_PORT is given:
#       routes to the other members' cluster ports); waits until it accepts
#       connections. A node started again reuses its configuration and store.
#   nats.sh stop DIR NAME       shut down (no error if down)
#   nats.sh kill DIR NAME       kill -9
#   nats.sh stopall DIR         shut down every node under DIR
set -euo pipefail
server=$(command -v nats-server || true)
[ -n "$server" ] || { echo "nats.sh: no nats-server (apt-get install nats-server)" >&2; exit 2; }

wait_port() { # port: until it accepts a connection (at most 10 s)
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

stop_node() { # dir name signal
  local pidf="$1/$2/nats.pid"
  [ -f "$pidf" ] || return 0
  local pid
  pid=$(cat "$pidf")
  kill "-$3" "$pid" 2>/dev/null || true
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  rm -f "$pidf"
}

case ${1:-} in
start)
  dir=$2 name=$3 port=$4
  shift 4
  node="$dir/$name"
  mkdir -p "$node"
  conf="$node/nats.conf"
  if [ ! -f "$conf" ]; then
    cport= routes=() token=
    while [ $# -gt 0 ]; do
      case $1 in
      --) token=$2; shift 2 ;;
      *) if [ -z "$cport" ]; then cport=$1; else routes+=("nats-route://127.0.0.1:$1"); fi; shift ;;
      esac
    done
    {
      echo "server_name: $name"
      echo "listen: 127.0.0.1:$port"
      echo "pid_file: \"$node/nats.pid\""
      echo "jetstream { store_dir: \"$node/js\" }"
      if [ -n "$cport" ]; then
        echo "cluster { name: cc, listen: 127.0.0.1:$cport"
        [ ${#routes[@]} -gt 0 ] && echo "  routes: [$(IFS=,; echo "${routes[*]}")]"
        echo "}"
      fi
      [ -n "$token" ] && echo "authorization { token: \"$token\" }"
    } >"$conf"
  fi
  "$server" -c "$conf" >>"$node/nats.log" 2>&1 &
  wait_port "$port" || { echo "nats.sh: node $name not listening on $port" >&2; tail -5 "$node/nats.log" >&2; exit 1; }
  ;;
stop | kill)
  stop_node "$2" "$3" "$([ "$1" = kill ] && echo KILL || echo TERM)"
  ;;
stopall)
  for pidf in "$2"/*/nats.pid; do
    [ -f "$pidf" ] || continue
    stop_node "$2" "$(basename "$(dirname "$pidf")")" TERM
  done
  ;;
*)
  echo "usage: nats.sh start|stop|kill|stopall DIR ..." >&2
  exit 2
  ;;
esac
