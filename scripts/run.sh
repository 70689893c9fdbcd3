#!/usr/bin/env bash
# The run command (README): installs what it needs on a fresh Debian 12 machine,
# builds chatcore-server, and starts it on 127.0.0.1:8080 with a fresh secret,
# the dev login on and its database in ./chatcore.db (kept across runs). It prints
# the URL of the browser client.
#   CHATCORE_SKIP_APT=1   skip apt-get (packages already installed)
#   CHATCORE_LISTEN       address to serve on (default 127.0.0.1:8080; a loopback
#                         address: the server refuses --dev-login elsewhere)
#   CHATCORE_DB           database file (default ./chatcore.db)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CHATCORE_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2046
  apt-get install -y -q --no-install-recommends $(grep -v '^#' scripts/debian-packages.txt)
fi

[ -d build-run ] || meson setup build-run -Dbuildtype=release -Dtests=disabled
meson compile -C build-run chatcore-server

listen=${CHATCORE_LISTEN:-127.0.0.1:8080}
db=${CHATCORE_DB:-chatcore.db}
secret=$(openssl rand -hex 32)
echo "chatcore-server: open http://$listen/ in a browser and log in as any name"
echo "  (WebSocket at ws://$listen/ws, health http://$listen/healthz, metrics http://$listen/metrics,"
echo "   a token: curl -s -X POST -d '{\"user\":\"alice\"}' http://$listen/v1/login)"
exec build-run/examples/chatcore-server/chatcore-server --listen "$listen" \
  --jwt-secret "$secret" --db "$db" --dev-login
