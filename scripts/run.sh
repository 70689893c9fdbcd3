#!/usr/bin/env bash
# The run command (README): installs what it needs on a fresh Debian 12 machine,
# builds chatcore-server, and starts it on 127.0.0.1:8080 with a fresh secret.
# It prints the URL and a token for a demo user.
#   CHATCORE_SKIP_APT=1   skip apt-get (packages already installed)
#   CHATCORE_LISTEN       address to serve on (default 127.0.0.1:8080)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CHATCORE_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2046
  apt-get install -y -q --no-install-recommends $(grep -v '^#' tests/debian-packages.txt)
fi

[ -d build-run ] || meson setup build-run -Dbuildtype=release -Dtests=disabled
meson compile -C build-run chatcore-server

listen=${CHATCORE_LISTEN:-127.0.0.1:8080}
secret=$(openssl rand -hex 32)
token=$(/usr/bin/python3 -c 'import sys, time, jwt
print(jwt.encode({"sub": "alice", "exp": int(time.time()) + 86400}, sys.argv[1], algorithm="HS256"))' "$secret")
echo "chatcore-server on ws://$listen/ws  (health: http://$listen/healthz, metrics: http://$listen/metrics)"
echo "a token for user 'alice', valid 24 h:"
echo "  $token"
echo "try: /usr/bin/python3 -m websockets ws://$listen/ws?access_token=$token"
exec build-run/examples/chatcore-server/chatcore-server --listen "$listen" --jwt-secret "$secret"
