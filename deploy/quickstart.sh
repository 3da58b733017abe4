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
# The main job, zero configuration: a private Redis (AOF) in the data directory, supervised
# workers, the gateway on 127.0.0.1:8080, the admin API on 127.0.0.1:9080, tenant "demo" with
# one TC per SUIT scenario and a policy, then the simulated fleet against it and its report.
# tamd keeps serving afterwards; Ctrl-C stops everything.
dir=${TAMGATE_DEMO_DIR:-/var/tmp/tamgate-demo}
echo "starting: build/src/gateway/tamd --data-dir $dir --demo   (Ctrl-C to stop)"
exec build/src/gateway/tamd --data-dir "$dir" --demo --log-level warn
