#!/usr/bin/env bash
# The installed tree, used the way a stranger would: `meson install` into a
# temporary directory, then, with nothing but pkg-config (and PYTHONPATH for the
# Python package) pointing there, no path into the source or build tree:
#   1. chatcore.pc holds no absolute path (no file of the build machine);
#   2. the Python bindings' tests pass, package and library both from the prefix;
#   3. tests/installed/consumer.c builds with `pkg-config --cflags --libs chatcore`
#      and runs against the installed .so;
#   4. tests/installed/consumer.cpp (the C++ wrapper, <chatcore/chatcore.hpp>)
#      builds warning-free with g++ and clang++ the same way and runs;
#   5. consumer.c builds again with `pkg-config --static --cflags --libs chatcore` once the
#      installed .so is gone, and runs without libchatcore.so.
# usage: check_installed.sh BUILD_DIR SOURCE_DIR PREFIX LIBDIR PYTHON_DIR CC CXX
#   LIBDIR and PYTHON_DIR absolute (as meson configured them, under PREFIX).
# Environment: CHATCORE_SANITIZE (meson's b_sanitize) adds -fsanitize= to the
# compiles; CHATCORE_PRELOAD is preloaded into Python (the ASan runtime, which
# must come first in a process that loads an ASan-built library) and
# CHATCORE_PYTHON_ASAN_OPTIONS replaces ASAN_OPTIONS for it.
set -euo pipefail
build=$1 src=$2 prefix=$3 libdir=$4 pydir=$5 cc=$6 cxx=$7

fail() { echo "FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/chatcore-installed.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest
meson install -C "$build" --no-rebuild --quiet --destdir "$dest" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "meson install"; }

pcdir=$dest$libdir/pkgconfig
pc=$pcdir/chatcore.pc
[ -f "$pc" ] || fail "no $pc"
if grep -nE '(^|[=[:space:]])/' "$pc"; then
  fail "chatcore.pc holds an absolute path (above)"
fi
echo "ok: chatcore.pc holds no absolute path"

# Only the prefix: none of the variables the build-tree tests use.
unset CHATCORE_LIBRARY LD_LIBRARY_PATH PYTHONPATH
export PKG_CONFIG_PATH=$pcdir
export PYTHONDONTWRITEBYTECODE=1
[ "$(pkg-config --variable=prefix chatcore)" -ef "$dest$prefix" ] ||
  fail "pkg-config's prefix is $(pkg-config --variable=prefix chatcore), not $dest$prefix"
[ "$(pkg-config --variable=libdir chatcore)" -ef "$dest$libdir" ] ||
  fail "pkg-config's libdir is $(pkg-config --variable=libdir chatcore), not under $dest"
for flag in $(pkg-config --cflags --libs --static chatcore); do
  case $flag in
  *"$src"* | *"$build"*) fail "pkg-config flag $flag points into the source or build tree" ;;
  esac
done

cd "$tmp"
if [ -n "${CHATCORE_PYTHON_SKIP:-}" ]; then
  echo "SKIP Python bindings against the prefix: $CHATCORE_PYTHON_SKIP"
else
  PYTHONPATH=$dest$pydir CHATCORE_EXPECT_PREFIX=$dest LD_PRELOAD=${CHATCORE_PRELOAD:-} \
    ASAN_OPTIONS=${CHATCORE_PYTHON_ASAN_OPTIONS:-${ASAN_OPTIONS:-}} /usr/bin/python3 -m pytest -q -p no:cacheprovider "$src/bindings/python/tests"
  echo "ok: Python bindings against the prefix"
fi

san=()
if [ -n "${CHATCORE_SANITIZE:-}" ] && [ "$CHATCORE_SANITIZE" != none ]; then
  san=("-fsanitize=$CHATCORE_SANITIZE")
fi
cflags=(-std=c11 -Wall -Wextra -pedantic -Werror "${san[@]}")
# shellcheck disable=SC2046  # pkg-config's output is meant to be split
"$cc" "${cflags[@]}" "$src/tests/installed/consumer.c" -o consumer \
  $(pkg-config --cflags --libs chatcore)
LD_LIBRARY_PATH=$dest$libdir ./consumer
# (ldd's output held first: grep -q stopping early would fail the pipe.)
deps=$(LD_LIBRARY_PATH=$dest$libdir ldd ./consumer)
grep -q "libchatcore.so.* => $dest" <<<"$deps" ||
  fail "consumer does not run against the installed libchatcore.so: $deps"
echo "ok: consumer built with pkg-config --cflags --libs chatcore"

# The C++ wrapper with g++ and clang++. Under a sanitizer with meson's compiler
# only: the instrumented library needs that compiler's runtime, which the
# other's would clash with.
cxxflags=(-std=c++17 -Wall -Wextra -pedantic -Werror "${san[@]}")
cxxs=()
if [ ${#san[@]} -gt 0 ]; then
  cxxs=("$cxx")
else
  for c in g++ clang++; do
    if command -v "$c" >/dev/null; then cxxs+=("$c"); else echo "SKIP $c: not installed"; fi
  done
fi
for c in "${cxxs[@]}"; do
  # shellcheck disable=SC2046
  "$c" "${cxxflags[@]}" "$src/tests/installed/consumer.cpp" -o consumer-cxx \
    $(pkg-config --cflags --libs chatcore)
  LD_LIBRARY_PATH=$dest$libdir ./consumer-cxx
  echo "ok: C++ wrapper with $c (-std=c++17 -Wall -Wextra -pedantic -Werror)"
done

rm -f "$dest$libdir"/libchatcore.so*
# shellcheck disable=SC2046
"$cc" "${cflags[@]}" "$src/tests/installed/consumer.c" -o consumer-static \
  $(pkg-config --static --cflags --libs chatcore)
./consumer-static
deps=$(ldd ./consumer-static)
if grep libchatcore <<<"$deps"; then
  fail "consumer-static still needs libchatcore.so"
fi
echo "ok: consumer built with pkg-config --static --cflags --libs chatcore"
