#!/usr/bin/env bash
# One command from a fresh Debian 12 machine (as root): install, build, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
if [ ! -f build/build.ninja ]; then
  meson setup build --buildtype=release >/dev/null
fi
ninja -C build >/dev/null
echo "built: $(ls build/src/*/tamctl build/src/*/tamd build/src/*/tam-worker build/src/*/tam-agent 2>/dev/null | tr '\n' ' ')"
# Until `tamd --demo` lands (the multi-tenant issue): decode the spec's demo messages with the
# offline tools. The full stack runs end to end in tests/unit/test_e2e.c.
for v in teep26_query_request teep26_update teep26_success; do
  echo "== tamctl teep decode tests/vectors/$v.hex"
  build/src/tools/tamctl teep decode tests/vectors/$v.hex
done
