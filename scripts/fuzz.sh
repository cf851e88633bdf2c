#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for SECONDS, seeded
# from tests/fuzz/corpus/<target>/. Skips (saying so) when clang is missing.
set -euo pipefail
build=${1:-build-fuzz}
secs=${2:-10}
if ! command -v clang >/dev/null; then
  echo "fuzz: clang not found, fuzz targets not run"
  exit 0
fi
CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DRPCNET_FUZZ=ON \
  -DRPCNET_BUILD_EXAMPLES=OFF -DRPCNET_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j2 --target fuzz_targets
targets=$(ls "$build"/tests/fuzz/fuzz_* 2>/dev/null || true)
if [ -z "$targets" ]; then
  echo "fuzz: no fuzz targets built" >&2
  exit 1
fi
for t in $targets; do
  name=$(basename "$t")
  work="$build/corpus-run/$name"
  mkdir -p "$work"
  seeds="tests/fuzz/corpus/$name"
  echo "fuzz: $name for ${secs}s"
  "$t" -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$work/" "$work" $( [ -d "$seeds" ] && echo "$seeds" ) \
    2>"$work.log" || { tail -50 "$work.log"; echo "fuzz: $name FAILED" >&2; exit 1; }
  grep -E 'stat::number_of_executed_units' "$work.log" | sed "s/^/fuzz: $name /"
done
