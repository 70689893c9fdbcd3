#!/usr/bin/env bash
# The test command (README): installs the Debian packages the build and the tests
# need, builds from scratch with warnings as errors, runs every suite, then builds
# again under AddressSanitizer + UndefinedBehaviorSanitizer and runs the suites there,
# then builds with clang for the fuzz targets (tests/fuzz/) and runs their smoke runs
# and the unit suites there.
#   CHATCORE_SKIP_APT=1   skip apt-get (packages already installed)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CHATCORE_SKIP_APT:-0}" != 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # shellcheck disable=SC2046
  apt-get install -y -q --no-install-recommends $(grep -hv '^#' scripts/debian-packages.txt tests/debian-packages.txt)
fi

rm -rf build-test build-test-san build-test-fuzz
meson setup build-test -Dwerror=true -Dtests=enabled
meson compile -C build-test
meson test -C build-test --print-errorlogs

meson setup build-test-san -Dwerror=true -Dtests=enabled \
  -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-test-san
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ASAN_OPTIONS=detect_leaks=1 \
  meson test -C build-test-san --print-errorlogs

# Clang, for the fuzz targets (docs/fuzzing.md): their smoke runs (each target's
# seeds, then a fixed number of mutated inputs) and the unit suites, under ASan
# and clang's UBSan, whose -fsanitize=undefined includes pointer-overflow: it
# catches NULL + 0, which gcc's does not (issue 16, finding 7), on the paths the
# seeds and the unit tests reach.
CC=clang CXX=clang++ meson setup build-test-fuzz -Dwerror=true -Dtests=enabled \
  -Dfuzz=enabled -Db_lundef=false
meson compile -C build-test-fuzz
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ASAN_OPTIONS=detect_leaks=1 \
  meson test -C build-test-fuzz --suite fuzz --suite unit --print-errorlogs
echo "all tests passed (plain, ASan+UBSan, and clang: fuzz smoke runs and unit suites)"
