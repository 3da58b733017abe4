#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run runs exactly this).
# Builds with ASan+UBSan, runs every meson test, then runs the Criterion binaries
# directly so that their closing lines come last, and ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TAM_TEST_BUILD:-build-test}
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Db_sanitize=address,undefined -Dwerror=true >/dev/null
fi
if ! ninja -C "$build" >"$build/ninja.log" 2>&1; then
  tail -n 60 "$build/ninja.log"
  echo "0 passed, 1 failed"
  exit 1
fi
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TAM_VECTORS="$PWD/tests/vectors" TAM_SOURCE_ROOT="$PWD" TAM_BUILD_ROOT="$PWD/$build"

# Everything that is not a Criterion unit binary: fuzz corpus replays, integration, lint.
meson test -C "$build" --no-suite unit --print-errorlogs

passed=0 failed=0
for t in "$build"/tests/unit/test_*; do
  [ -f "$t" ] && [ -x "$t" ] || continue
  echo "== $(basename "$t")"
  set +e
  out=$("$t" --jobs=2 2>&1)
  rc=$?
  set -e
  printf '%s\n' "$out" | grep -E '^\[(FAIL|----)\]' || true
  line=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -1 || true)
  echo "$line"
  p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$line")
  f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0}))
  if [ -z "$line" ] || [ "$rc" != 0 ]; then
    failed=$((failed + ${f:-1}))
    [ "${f:-0}" = 0 ] && failed=$((failed + 1))
  else
    failed=$((failed + ${f:-0}))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
