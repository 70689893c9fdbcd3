#!/bin/sh
# The smoke run of one fuzz target (meson test --suite fuzz): its seeds, then
# RUNS inputs mutated from them with a fixed seed, so that every run of the
# suite does the same. New inputs go to a scratch directory, not to the seeds.
# Usage: smoke.sh TARGET SEEDS_DIR DICT RUNS ARTIFACT_PREFIX
set -eu
target=$1 seeds=$2 dict=$3 runs=$4 artifacts=$5
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$target" -seed=1 -runs="$runs" -max_len=4096 -timeout=30 -dict="$dict" \
  -artifact_prefix="$artifacts" -print_final_stats=1 "$scratch" "$seeds"
