#!/usr/bin/env bash
# A private redis-server for the tests: its own directory, its own loopback
# port, nothing on disk (no RDB, no AOF: presence is soft state).
#
#   redis.sh start DIR PORT [PASSWORD]   start (waits until it answers PING)
#   redis.sh stop DIR                    shutdown (no error if down)
#   redis.sh kill DIR                    kill -9
set -euo pipefail
server=$(command -v redis-server || true)
cli=$(command -v redis-cli || true)
[ -n "$server" ] && [ -n "$cli" ] || { echo "redis.sh: no redis-server (apt-get install redis-server)" >&2; exit 2; }
case ${1:-} in
start)
  dir=$2 port=$3 pass=${4:-}
  args=(--port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no
        --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log")
  [ -n "$pass" ] && args+=(--requirepass "$pass")
  "$server" "${args[@]}"
  for _ in $(seq 1 100); do
    "$cli" -h 127.0.0.1 -p "$port" ${pass:+-a "$pass"} --no-auth-warning ping 2>/dev/null |
      grep -q PONG && exit 0
    sleep 0.05
  done
  echo "redis.sh: server on port $port not answering" >&2
  exit 1
  ;;
stop | kill)
  dir=$2
  [ -f "$dir/redis.pid" ] || exit 0
  pid=$(cat "$dir/redis.pid")
  kill "$([ "$1" = kill ] && echo -9 || echo -TERM)" "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  rm -f "$dir/redis.pid"
  ;;
*)
  echo "usage: redis.sh start|stop|kill DIR ..." >&2
  exit 2
  ;;
esac
