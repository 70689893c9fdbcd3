#!/bin/sh
# The seam: a program that drives the chat service with sessions links no
# gateway, no edge and no transport (it links the static library, so only the
# objects it needs come in). Fails naming the first such symbol it finds.
set -eu
bin="$1"
test -x "$bin" || { echo "not an executable: $bin" >&2; exit 2; }
syms=$(nm "$bin" | awk '$2 ~ /^[TtDdBb]$/ {print $3}')
echo "$syms" | grep -q '^cc_service_session_open$' || { echo "no service in $bin" >&2; exit 1; }
for sym in cc_gateway_new cc_conn_recv cc_edge_new cc_link_new cc_uv_server_new wslay_event_context_server_init; do
  if echo "$syms" | grep -qx "$sym"; then
    echo "$bin links $sym: the service pulled in a layer above it" >&2
    exit 1
  fi
done
echo "1 passed, 0 failed"
