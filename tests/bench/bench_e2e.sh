#!/usr/bin/env bash
# End-to-end TEEP sessions per second with tam-agent against tamd + tam-worker
# (issue #6 benchmark harness; run by tests/bench/run.sh, or alone:
#   TAM_BENCH_BUILD=build-bench bash tests/bench/bench_e2e.sh [quick]).
#
# For 1 gateway + 1 worker and 2 + 2, and for a fleet of ESP256 and of Ed25519
# devices, it starts tamd in zero-configuration mode (private redis-server in a
# temporary data dir) with a static tenant that registers the fleet's keys and
# trusts its attester, waits for /readyz, runs `tam-agent load --json` (closed
# loop), and prints sessions/s, messages/s and p50/p99 of each message type.
#
# A session here is empty POST -> QueryRequest -> QueryResponse (with EAT) ->
# 204 or Update -> Success -> 204: whether an Update follows depends on the
# tenant's policy. Static tenants have no policy yet, so this measures session
# starts plus attested QueryResponses; once a demo tenant with TCs exists, point
# TAM_E2E_TENANT_INI at an ini fragment that adds it and the same numbers include
# the Update and Success. The crypto-only bound is measured by bench_gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${TAM_BENCH_BUILD:-build-bench}
agent="$build/src/agent/tam-agent"
tamd="$build/src/gateway/tamd"
worker_dir="$build/src/worker"
for b in "$agent" "$tamd" "$worker_dir/tam-worker"; do
  if [ ! -x "$b" ]; then
    echo "bench_e2e: $b is missing, skipped"
    exit 0
  fi
done
secs=5 devices=64 conc=32
[ "${1:-}" = quick ] && secs=1.5
tmp=$(mktemp -d /tmp/tam-e2e-XXXXXX)
tamd_pid=""
cleanup() {
  if [ -n "$tamd_pid" ]; then
    kill "$tamd_pid" 2>/dev/null || true
    wait "$tamd_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# $1 alg, $2 dir: a seeded fleet and the tenant section registering it.
make_fleet() {
  "$agent" keys --seed "bench-$1" --alg "$1" --devices "$devices" --export-keys "$2" >/dev/null
  {
    echo "[tenant bench]"
    echo "numbering = rfc"
    echo "attestation = required"
    echo "enrollment = registered"
    echo "tam-key = $PWD/tests/vectors/tam_p256.priv.pem"
    echo "tam-key = $PWD/tests/vectors/tam_ed25519.priv.pem"
    echo "attester-key = $2/attester.pub.pem"
    echo "tc-signer-key = $PWD/tests/vectors/suit_example_key_p256.pub.pem"
    for f in "$2"/device-*.pub.pem; do echo "device-key = $f"; done
    if [ -n "${TAM_E2E_TENANT_INI:-}" ]; then cat "$TAM_E2E_TENANT_INI"; fi
  } >"$2/tamd.ini"
}

# $1 procs, $2 workers, $3 ini: starts tamd and waits until it is ready.
start_tamd() {
  local port=$(free_port) aport=$(free_port)
  mkdir -p "$tmp/data"
  PATH="$worker_dir:$PATH" "$tamd" --config "$3" --data-dir "$tmp/data" \
    --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$aport" --procs "$1" --workers "$2" \
    --log-level warn >"$tmp/tamd.log" 2>&1 &
  tamd_pid=$!
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$aport/readyz" >/dev/null 2>&1; then
      url="http://127.0.0.1:$port/tam/bench"
      return 0
    fi
    sleep 0.1
  done
  echo "bench_e2e: tamd did not become ready"; tail -n 20 "$tmp/tamd.log"
  return 1
}

stop_tamd() {
  kill "$tamd_pid" 2>/dev/null || true
  wait "$tamd_pid" 2>/dev/null || true
  tamd_pid=""
  rm -rf "$tmp/data"
}

summary() {
  /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
l = d["latency_ms"]
def p(k): return "%6.2f/%6.2f" % (l[k]["p50"], l[k]["p99"]) if l[k]["count"] else "     -/     -"
errs = ",".join("%s=%d" % kv for kv in d["errors"].items()) or "-"
print("%-9s %-8s %10.0f %10.0f  %s  %s  %s  %s" % (sys.argv[1], sys.argv[2], d["sessions_per_s"],
      d["messages_per_s"], p("query_request"), p("query_response"), p("update_result"), errs))
' "$1" "$2"
}

echo "tam-agent -> tamd end to end ($secs s per run, $devices devices, concurrency $conc)"
echo "procs+wk  devices  sessions/s messages/s  QR p50/p99     QResp p50/p99  Success p50/p99  errors"
for alg in esp256 ed25519; do
  make_fleet "$alg" "$tmp/$alg"
done
for pw in "1 1" "2 2"; do
  set -- $pw
  for alg in esp256 ed25519; do
    start_tamd "$1" "$2" "$tmp/$alg/tamd.ini"
    "$agent" load --url "$url" --seed "bench-$alg" --alg "$alg" --devices "$devices" \
      --concurrency "$conc" --duration "$secs" --no-progress --json \
      --attester-key "$tmp/$alg/attester.priv.pem" \
      --tam-key tests/vectors/tam_p256.pub.pem --tam-key tests/vectors/tam_ed25519.pub.pem \
      --tc-signer-key tests/vectors/suit_example_key_p256.pub.pem 2>/dev/null |
      summary "$1+$2" "$alg"
    stop_tamd
  done
done
