# shellcheck shell=bash
# Shared by run-chat-benchmarks.sh and run-gateway-benchmarks.sh (sourced, not
# run): throwaway certificates, one chatcore-server at a time on a fresh port,
# and waiting for the kernel to let go of the last run's sockets. The caller
# sets SERVER, SECRET, SERVER_CPU, OUT and PORT first.

# Self-signed P-256 and RSA-2048 certificates in OUT for the TLS runs (the
# bench does not verify them).
make_certs() {
  [ -f "$OUT/ec.crt" ] && [ -f "$OUT/rsa.crt" ] && return
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
    -subj /CN=127.0.0.1 -keyout "$OUT/ec.key" -out "$OUT/ec.crt" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 \
    -subj /CN=127.0.0.1 -keyout "$OUT/rsa.key" -out "$OUT/rsa.crt" 2>/dev/null
}

SPID=
# Starts chatcore-server on the next port, pinned to SERVER_CPU, with database
# DB ("" for a fresh file in OUT) and the extra flags; exits the script with
# the server's log if it does not come up within 5 s. Sets SPID.
start_server() { # DB [flags...]
  PORT=$((PORT + 1))
  local db=${1:-$OUT/server-$PORT.db}
  shift
  [ "$db" = "$OUT/server-$PORT.db" ] && rm -f "$db" "$db-wal" "$db-shm"
  timeout 900 taskset -c "$SERVER_CPU" "$SERVER" --listen "127.0.0.1:$PORT" \
    --jwt-secret "$SECRET" --db "$db" "$@" >"$OUT/server-$PORT.log" 2>&1 &
  SPID=$!
  for _ in $(seq 50); do
    grep -q listening "$OUT/server-$PORT.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q listening "$OUT/server-$PORT.log" || { cat "$OUT/server-$PORT.log" >&2; exit 1; }
  SPID=$(pgrep -P "$SPID" || echo "$SPID") # `timeout` is the parent
}

# SIGTERM (a drain), SIGKILL after 15 s.
stop_server() {
  [ -n "$SPID" ] || return 0
  kill -TERM "$SPID" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$SPID" 2>/dev/null || true
  wait 2>/dev/null || true
  SPID=
}

# Waits (at most 70 s) until the kernel has let go of the sockets of the last
# run: thousands of TIME_WAIT sockets expiring together, or being torn down,
# would cost the next run CPU it does not know about.
settle() {
  for _ in $(seq 70); do
    local tw
    tw=$(awk '/^TCP:/ {for (i = 1; i < NF; i++) if ($i == "tw") print $(i + 1)}' \
      /proc/net/sockstat)
    [ "${tw:-0}" -lt 1000 ] && return
    sleep 1
  done
}
