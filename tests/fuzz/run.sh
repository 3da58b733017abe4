#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan and fuzzes each one for a
# bounded time (seconds per target: $1, default 30), starting from the spec vectors
# and tests/fuzz/corpus. Any crash, leak or sanitizer report fails the run; the
# crashing input is left in build-fuzz/crashes/ to be added to the corpus.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
build=${TAM_FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" -Dfuzz=libfuzzer -Dtests=false \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$build" >"$build/ninja.log" 2>&1 || { tail -n 40 "$build/ninja.log"; exit 1; }
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
mkdir -p "$build/crashes"
for t in "$build"/tests/fuzz/fuzz_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  name=$(basename "$t" | sed 's/^fuzz_//')
  work="$build/corpus/$name"
  mkdir -p "$work"
  echo "== fuzz $name for ${secs}s"
  "$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$build/crashes/$name-" -print_final_stats=1 \
    "$work" "$build/tests/fuzz/seeds/$name" "tests/fuzz/corpus/$name" 2>"$build/fuzz-$name.log" \
    || { tail -n 40 "$build/fuzz-$name.log"; echo "fuzz target $name failed"; exit 1; }
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/fuzz-$name.log" | tr '\n' ' '
  echo
done
