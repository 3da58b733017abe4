#!/usr/bin/env bash
# Fails when project sources use a banned function (curl's checksrc list) or allocate
# outside src/base/alloc.c. Run by `meson test` (suite lint).
set -euo pipefail
root=${1:-$(dirname "$0")/../..}
cd "$root"
status=0
banned='\b(strcpy|strcat|sprintf|vsprintf|strncpy|strtok|atoi|atol|gets|alloca)[[:space:]]*\('
if grep -nE "$banned" $(git ls-files 'src/*.c' 'src/*.h' 'include/*.h' 2>/dev/null || find src include -name '*.[ch]'); then
  echo "lint: banned function above"
  status=1
fi
raw='(^|[^_a-z])(malloc|calloc|realloc|free)[[:space:]]*\('
files=$(git ls-files 'src/*.c' 2>/dev/null || find src -name '*.c')
if grep -nE "$raw" $files | grep -v '^src/base/alloc.c:' | grep -vE 'json_|/\* *allocated by|// *allocated by'; then
  echo "lint: raw allocation outside src/base/alloc.c above (use tam_alloc.h)"
  status=1
fi
exit $status
