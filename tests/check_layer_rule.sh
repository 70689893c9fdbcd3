#!/bin/sh
# The layer check (scripts/check_layers.py) refuses upward includes: copies of
# the tree with one planted each must fail, naming the file; the tree itself
# passes.
set -eu
root="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { /usr/bin/python3 "$root/scripts/check_layers.py" "$1" "$tmp/stamp"; }
plant() { # plant NAME FILE LINE: a copy of the tree with LINE at the top of FILE
  mkdir -p "$tmp/$1"
  cp -r "$root/include" "$root/lib" "$tmp/$1/"
  sed -i "1i $3" "$tmp/$1/$2"
}
fail=0
check "$root" >/dev/null || { echo "the tree itself breaks the layer rule" >&2; fail=1; }
plant up1 lib/service/service.c '#include <chatcore/gateway.h>'
plant up2 lib/edge/edge.c '#include "service/service_impl.h"'
plant up3 include/chatcore/service.h '#include <chatcore/edge.h>'
plant up4 lib/backends/memory/storage.c '#include "backends/sqlite/sqlite_options.h"'
plant up5 lib/gateway/conn.c '#include <chatcore/newthing.h>'
for case in up1:lib/service/service.c up2:lib/edge/edge.c up3:include/chatcore/service.h \
            up4:lib/backends/memory/storage.c up5:lib/gateway/conn.c; do
  dir=${case%%:*} file=${case#*:}
  if out=$(check "$tmp/$dir" 2>&1); then
    echo "$dir: an upward include in $file passed" >&2
    fail=1
  elif ! echo "$out" | grep -q "$file:1:"; then
    echo "$dir: the error does not name $file:1: $out" >&2
    fail=1
  fi
done
[ $fail = 0 ] && echo "6 passed, 0 failed" || { echo "0 passed, 1 failed"; exit 1; }
