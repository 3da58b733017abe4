#!/usr/bin/env bash
# All benchmarks, one command: bash tests/bench/run.sh [quick]
# Builds an optimised build (build-bench) and runs each benchmark that exists.
# Figures are ratios measured in the same run: absolute numbers on a shared
# 2-core machine are only indicative.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${TAM_BENCH_BUILD:-build-bench}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" >"$build/ninja.log" 2>&1 || { tail -n 40 "$build/ninja.log"; exit 1; }
secs=0.5 rounds=5
[ "${1:-}" = quick ] && secs=0.2 rounds=2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo
"$build/tests/bench/bench_codec" tests/vectors "$secs" "$rounds"
for extra in tests/bench/bench_*.sh; do
  [ -f "$extra" ] || continue
  echo
  TAM_BENCH_BUILD="$build" bash "$extra" ${1:-}
done
for b in "$build"/tests/bench/bench_*; do
  [ -f "$b" ] && [ -x "$b" ] || continue
  # bench_seed and bench_bound are helpers of bench_e2e.sh, not benchmarks of their own.
  case "$(basename "$b")" in bench_codec | bench_seed | bench_bound) continue ;; esac
  echo
  TAM_BUILD_ROOT="$build" TAM_SOURCE_ROOT="$PWD" TAM_VECTORS="$PWD/tests/vectors" "$b" ${1:-}
done
