#!/usr/bin/env bash
# End-to-end benchmark of issue #6, one command, one table:
#   TAM_BENCH_BUILD=/path/to/release/build bash tests/bench/bench_e2e.sh [quick]
# (also run by tests/bench/run.sh). Full: about 3 minutes; quick: under 2.
#
# For ESP256 and Ed25519, with 1 gateway process + 1 tam-worker and with 2 + 2, it starts
# its own redis-server, seeds a config-file tenant (bench_seed: one SUIT envelope with an
# integrated 1 KiB payload signed by a fresh TC-signer key, a policy installing it on every
# device, N devices registered in Redis as the admin API does), starts tamd and the
# workers, and measures in the same run:
#   - session starts/s: peak empty POST -> QueryRequest (wrk -t1 -c64, keep-alive);
#   - full exchanges/s: `tam-agent load` (closed loop, 128 sessions in flight: with 32 the
#     stages ran in bursts and left a third of the cores idle; the table's "cores busy"
#     shows how close a row came to using both; --no-verify),
#     each session QueryRequest -> QueryResponse with EAT -> Update with one manifest ->
#     Success. The fleet has more devices than the run can serve, so every session is a
#     device's first and installs the TC: checked with the agent's counters (installed,
#     no errors, no failed manifests) and with the device records in Redis (bench_seed
#     check: every installing device lists the TC exactly once);
#   - the crypto-only bound of the same operations (bench_bound, run before and after each
#     row, averaged; what each exchange costs is listed in bench_bound.c): CPU time per
#     operation on one core, bound = cores / (TAM crypto + agent crypto) per exchange, and
#     the ratio measured / bound. On a shared machine that ratio also absorbs the CPU other
#     processes take, so the table adds a noise-free figure: the stack's CPU time
#     (/proc/PID/stat of tamd and its children, the workers, redis-server) per session
#     start and per exchange, and the share of it the crypto bound accounts for;
# then, for ESP256 1 + 1: the gateway's RSS holding 10,000 idle connections (tam-agent
# idle: connections opened and held without a request) and latency percentiles at half
# the measured peak (tam-agent load --rate, open loop, a second fleet of new devices).
# Prints one markdown table, the crypto rates, and the load average.
#
# The tenants are single-key (one TAM key of the row's algorithm, sign1-only): the fleet
# is all ESP256 or all Ed25519, so the QueryRequest is a COSE_Sign1 with that algorithm;
# a two-key tenant signs every QueryRequest twice (one ESP256 + one Ed25519 signature).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
build=${TAM_BENCH_BUILD:-build-bench}
agent="$build/src/agent/tam-agent"
tamd="$build/src/gateway/tamd"
worker="$build/src/worker/tam-worker"
seedp="$build/tests/bench/bench_seed"
boundp="$build/tests/bench/bench_bound"
for b in "$agent" "$tamd" "$worker" "$seedp" "$boundp"; do
  if [ ! -x "$b" ]; then
    echo "bench_e2e: $b is missing, skipped"
    exit 0
  fi
done
for t in wrk redis-server curl; do
  command -v "$t" >/dev/null || { echo "bench_e2e: $t is missing, skipped"; exit 0; }
done

quick=${1:-}
secs=8 wrk_s=4 rate_s=6 conc=128 bound_s=0.3 idle_n=10000
if [ "$quick" = quick ]; then
  secs=3 wrk_s=2 rate_s=3 bound_s=0.12
fi
cores=$(nproc)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((idle_n + 1000)) ]; then
  echo "bench_e2e: open-file limit $(ulimit -n) is below $((idle_n + 1000))"; exit 1
fi

tmp=$(mktemp -d /tmp/tam-bench-e2e-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${TAM_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
py() { /usr/bin/python3 -c "$@"; }
free_port() {
  py 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
jget() { py 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

load0=$(cut -d' ' -f1-3 /proc/loadavg)
# ---- the crypto bound (first half) ----
"$boundp" "$bound_s" >"$tmp/bound0.txt"

# ---- one stack: redis, seed, tamd (procs), workers ----
# $1 alg, $2 procs, $3 workers, $4 devices
start_stack() {
  local alg=$1 procs=$2 workers=$3 devices=$4 d="$tmp/run"
  rm -rf "$d"; mkdir -p "$d"
  redis-server --port 0 --unixsocket "$d/redis.sock" --dir "$d" --save "" --appendonly no \
    --daemonize no >"$d/redis.log" 2>&1 &
  redis_pid=$!; pids+=("$redis_pid")
  for _ in $(seq 1 100); do [ -S "$d/redis.sock" ] && break; sleep 0.05; done
  redis="unix:$d/redis.sock"
  "$seedp" seed "$redis" bench "$alg" "bench-$alg" "$devices" "$d/signer.pub.pem" >"$d/seed.log"
  local tamkey=tam_p256
  [ "$alg" = ed25519 ] && tamkey=tam_ed25519
  tam_pub="$src/tests/vectors/$tamkey.pub.pem"
  port=$(free_port); aport=$(free_port)
  cat >"$d/tamd.ini" <<EOF
listen = 127.0.0.1:$port
admin-listen = 127.0.0.1:$aport
redis = $redis
data-dir = $d
workers = 0
procs = $procs
log-level = warn
max-connections = $((idle_n + 2000))
idle-timeout = 10m
header-timeout = 10m

[tenant bench]
numbering = rfc
attestation = required
enrollment = registered
sign1-only = true
tam-key = $src/tests/vectors/$tamkey.priv.pem
attester-key = $tmp/keys-$alg/attester.pub.pem
tc-signer-key = $d/signer.pub.pem
EOF
  "$tamd" --config "$d/tamd.ini" >"$d/tamd.log" 2>&1 &
  tamd_pid=$!; pids+=("$tamd_pid")
  worker_pids=()
  for i in $(seq 1 "$workers"); do
    "$worker" --config "$d/tamd.ini" --worker-id "bench-$i" >"$d/worker-$i.log" 2>&1 &
    pids+=("$!"); worker_pids+=("$!")
  done
  for _ in $(seq 1 200); do
    if curl -sf "http://127.0.0.1:$aport/readyz" >/dev/null 2>&1; then
      url="http://127.0.0.1:$port/tam/bench"
      return 0
    fi
    sleep 0.05
  done
  echo "bench_e2e: tamd did not become ready"; tail -n 20 "$d/tamd.log"; exit 1
}

# CPU seconds used so far by the stack, by role: "REDIS GATEWAYS WORKERS" (tamd and, with
# procs > 1, its gateway children; the tam-worker processes; redis-server).
cpu_of() {
  local p
  for p in "$@"; do
    # utime and stime: fields 14 and 15, after the ")" that ends the command name
    sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}'
  done | awk -v t="$(getconf CLK_TCK)" '{s += $1} END {printf "%.2f", s / t}'
}
stack_cpu() {
  local gws=("$tamd_pid") c
  for c in /proc/"$tamd_pid"/task/*/children; do
    [ -r "$c" ] && gws+=($(cat "$c"))
  done
  echo "$(cpu_of "$redis_pid") $(cpu_of "${gws[@]}") $(cpu_of "${worker_pids[@]}")"
}
# Microseconds per operation between two stack_cpu samples: "TOTAL GATEWAYS WORKERS REDIS".
cpu_per() { # $1 before, $2 after, $3 operations
  py "a=[float(x) for x in '$1'.split()]; b=[float(x) for x in '$2'.split()]; d=[1e6*(y-x)/$3 for x, y in zip(a, b)]; print('%.0f %.0f %.0f %.0f' % (sum(d), d[1], d[2], d[0]))"
}

stop_stack() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}

# Peak empty POST -> QueryRequest, keep-alive: prints requests/s (non-2xx answers fail).
session_starts() {
  cat >"$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Accept"] = "application/teep+cbor"
wrk.headers["Content-Length"] = "0"
EOF
  wrk -t1 -c64 -d"${wrk_s}s" -s "$tmp/post.lua" "$url" >"$tmp/wrk.txt" 2>&1
  if grep -q "Non-2xx" "$tmp/wrk.txt"; then
    echo "bench_e2e: wrk got non-2xx answers" >&2; cat "$tmp/wrk.txt" >&2; exit 1
  fi
  awk '/Requests\/sec/ {print $2}' "$tmp/wrk.txt"
}

# $1 alg, $2 seed, $3 devices, $4 json out, rest: extra tam-agent options.
fleet() {
  local alg=$1 seed=$2 devices=$3 out=$4; shift 4
  "$agent" load --url "$url" --seed "$seed" --alg "$alg" --devices "$devices" --no-verify \
    --attester-key "$tmp/keys-$alg/attester.priv.pem" --tam-key "$tam_pub" \
    --tc-signer-key "$tmp/run/signer.pub.pem" --no-progress --json \
    "$@" >"$out" 2>"$out.err" || { echo "bench_e2e: tam-agent failed"; cat "$out.err"; exit 1; }
}

# Every Update installed the TC on a new device, the device records agree, no errors.
# Prints "INSTALLED SHORT": SHORT sessions ended without an Update (the row counts only the
# sessions that installed; a non-zero SHORT is reported under the table).
check_installs() {
  local out=$1 label=$2 v errs ok failed installed mfail db once other
  v=$(jget "$out" 'len(d["errors"]), d["sessions_ok"], d["sessions_failed"], d["counts"]["installed"], d["counts"]["manifests_failed"]')
  read -r errs ok failed installed mfail <<<"$(echo "$v" | tr -d '(),')"
  db=$("$seedp" check "$redis" bench)
  once=$(echo "$db" | sed 's/.*installed_once=\([0-9]*\).*/\1/')
  other=$(echo "$db" | sed 's/.*installed_other=\([0-9]*\).*/\1/')
  if [ "$errs" != 0 ] || [ "$failed" != 0 ] || [ "$mfail" != 0 ] || [ "$once" != "$installed" ] ||
     [ "$other" != 0 ] || [ "$installed" -gt "$ok" ] || [ "$installed" = 0 ]; then
    echo "bench_e2e: $label: sessions_ok=$ok failed=$failed installed=$installed" \
         "manifests_failed=$mfail errors=$(jget "$out" 'd["errors"]') redis: $db" >&2
    return 1
  fi
  echo "$installed $((ok - installed))"
}

# Bound from the first bound run: exchanges/s on all cores, TAM + agent crypto.
bound_of() { # $1 alg, $2 field (tam_us|agent_us|start_us) from file $3
  sed -n "s/^alg=$1 .* $2=\([0-9.]*\).*/\1/p" "$3"
}
devices_for() { # enough devices for every session of the run to be a first one
  py "b=$cores*1e6/($(bound_of "$1" cpu_tam_us "$tmp/bound0.txt")+$(bound_of "$1" cpu_agent_us "$tmp/bound0.txt")); print(min(int(b*($secs+1)*1.2)+500, 40000))"
}

for alg in esp256 ed25519; do
  "$agent" keys --seed "bench-$alg" --alg "$alg" --devices 1 --export-keys "$tmp/keys-$alg" >/dev/null
done

# TAM_E2E_CONFIGS (debugging): a subset of "PROCS:ALG ..."; the idle and fixed-rate
# measurements run with 1:esp256.
rows=() notes=() peak="" nrow=0
for cfg in ${TAM_E2E_CONFIGS:-1:esp256 1:ed25519 2:esp256 2:ed25519}; do
  # The host's speed drifts within minutes here: each row is compared with the average of
  # the bound measured just before it and just after it (the next row's "before").
  [ "$nrow" = 0 ] || "$boundp" "$bound_s" >"$tmp/bound$nrow.txt"
  nrow=$((nrow + 1))
  set -- "${cfg%%:*}" "${cfg%%:*}"
  alg=${cfg#*:}
  {
    devices=$(devices_for "$alg")
    start_stack "$alg" "$1" "$2" "$devices"
    c0=$(stack_cpu)
    starts=$(session_starts)
    c1=$(stack_cpu)
    nstarts=$(awk '/requests in/ {print $1}' "$tmp/wrk.txt")
    out="$tmp/load-$alg-$1.json"
    redis-cli -s "$tmp/run/redis.sock" CONFIG RESETSTAT >/dev/null
    fleet "$alg" "bench-$alg" "$devices" "$out" --concurrency "$conc" --duration "$secs"
    c2=$(stack_cpu)
    redis-cli -s "$tmp/run/redis.sock" INFO commandstats >"$tmp/cmds-$alg-$1.txt"
    read -r n short <<<"$(check_installs "$out" "$alg $1+$2")"
    [ "$short" = 0 ] || notes+=("$alg $1+$2: $short of $((n + short)) sessions ended without an Update (QueryResponse answered 204); full exchanges/s counts only the $n that installed")
    read -r start_cpu _ <<<"$(cpu_per "$c0" "$c1" "$nstarts")"
    read -r exch_cpu gw_cpu wk_cpu rd_cpu <<<"$(cpu_per "$c1" "$c2" "$n")"
    exch=$(jget "$out" "round(d['sessions_per_s'] * $n / d['sessions_ok'], 1)")
    lat=$(jget "$out" '"%.2f / %.2f" % (d["latency_ms"]["query_response"]["p50"], d["latency_ms"]["query_response"]["p99"])')
    agent_cpu=$(jget "$out" "round(d['cpu_s'] * 1e6 / max(1, d['sessions_ok']))")
    rows+=("$alg $1 $2 $starts $exch $n $start_cpu $exch_cpu $gw_cpu $wk_cpu $rd_cpu $lat $agent_cpu")
    # Redis commands per session of the load run (every session, installed or not), and the
    # Redis CPU they took by command (INFO commandstats: calls, usec).
    notes+=("$alg $1+$2: Redis per session: $(py '
import re, sys
n = float(sys.argv[2])
st = {m.group(1): (int(m.group(2)), int(m.group(3))) for m in re.finditer(r"cmdstat_(\S+?):calls=(\d+),usec=(\d+)", open(sys.argv[1]).read())}
top = sorted(st.items(), key=lambda kv: -kv[1][1])
print("%.1f commands, %.0f us in commands (%s)" % (sum(c for c, u in st.values()) / n, sum(u for c, u in st.values()) / n,
      ", ".join("%s %.1f x %.1f us" % (k, c / n, u / max(c, 1)) for k, (c, u) in top[:10])))
' "$tmp/cmds-$alg-$1.txt" "$(jget "$out" 'd["sessions_ok"] + d["sessions_failed"]')")")
    if [ "$alg" = esp256 ] && [ "$1" = 1 ]; then
      peak=$exch
      # Latency at half of the peak: open loop, a second fleet of new devices.
      rdev=$(py "print(int($peak/2*($rate_s+2)*1.5)+500)")
      "$seedp" devices "$redis" bench esp256 bench-rate "$rdev" >/dev/null
      rate_out="$tmp/rate.json"
      fleet esp256 bench-rate "$rdev" "$rate_out" --rate "$(py "print(round($peak/2,1))")" \
        --duration "$rate_s"
      # Idle connections: the gateway (procs = 1: tamd itself) holds them.
      rss0=$(awk '/VmRSS/ {print $2}' "/proc/$tamd_pid/status")
      "$agent" idle --url "$url" --connections "$idle_n" --duration 600 --json --progress \
        >"$tmp/idle.json" 2>"$tmp/idle.err" &
      idle_pid=$!; pids+=("$idle_pid")
      for _ in $(seq 1 600); do
        grep -q holding "$tmp/idle.err" 2>/dev/null && break
        kill -0 "$idle_pid" 2>/dev/null || break
        sleep 0.1
      done
      sleep 1
      held=$(curl -s "http://127.0.0.1:$aport/metrics" | awk '$1 == "tam_http_connections" {print $2}')
      rss1=$(awk '/VmRSS/ {print $2}' "/proc/$tamd_pid/status")
      kill -INT "$idle_pid" 2>/dev/null || true
      wait "$idle_pid" 2>/dev/null || true
      idle_ok=$(jget "$tmp/idle.json" 'd["established"]' 2>/dev/null || echo "?")
    fi
    stop_stack
  }
done

"$boundp" "$bound_s" >"$tmp/bound$nrow.txt"
load=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the table ----
py '
import re, sys
cores = int(sys.argv[1])
def rates(path):
    out = {}
    for line in open(path):
        f = dict(kv.split("=") for kv in line.split())
        out[f["alg"]] = {k: float(v) for k, v in f.items() if k != "alg"}
    return out
bounds = [rates(f) for f in sys.argv[2].split("|")]
def mean(bs):
    return {a: {k: sum(x[a][k] for x in bs) / len(bs) for k in bs[0][a]} for a in bs[0]}
b = mean(bounds)  # the crypto lines below: every bound run of the benchmark
rows = [r.split() for r in sys.argv[3].split("|")]
name = {"esp256": "ESP256", "ed25519": "Ed25519"}
print("| alg | gateway + worker | session starts/s | bound | ratio | TAM CPU per start: crypto share | full exchanges/s | bound (TAM + agent crypto) | ratio | TAM CPU per exchange: crypto share | same: gateway / worker / redis | agent CPU per exchange; cores busy | QueryResponse p50 / p99 ms |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for i, r in enumerate(rows):
    alg, p, w, starts, exch, n, scpu, ecpu, gcpu, wcpu, rcpu, p50, _, p99, acpu = r
    x = mean(bounds[i:i + 2])[alg]
    sb = cores * 1e6 / x["cpu_start_us"]
    eb = cores * 1e6 / (x["cpu_tam_us"] + x["cpu_agent_us"])
    busy = (float(ecpu) + float(acpu)) * float(exch) / 1e6
    print("| %s | %s + %s | %.0f | %.0f | %.0f%% | %.0f us: %.0f%% | %.0f | %.0f | %.0f%% | %.0f us: %.0f%% | %s / %s / %s us | %s us; %.2f of %d | %s / %s |" % (
        name[alg], p, w, float(starts), sb, 100 * float(starts) / sb, float(scpu),
        100 * x["cpu_start_us"] / float(scpu), float(exch), eb, 100 * float(exch) / eb,
        float(ecpu), 100 * x["cpu_tam_us"] / float(ecpu), gcpu, wcpu, rcpu, acpu, busy, cores,
        p50, p99))
print()
for a in ("esp256", "ed25519"):
    x = b[a]
    print("crypto %s, per CPU second of one core (wall-clock rate in parentheses): sign %.0f (%.0f), "
          "sign with device keys %.0f (%.0f), sign an Update %.0f (%.0f), verify with one key %.0f (%.0f), "
          "verify with device keys %.0f (%.0f), import a public key %.0f (%.0f); crypto per exchange: "
          "TAM %.0f us CPU (%.0f wall), agent %.0f us CPU (%.0f wall)" % (name[a],
          x["cpu_sign_same"], x["sign_same"], x["cpu_sign_dist"], x["sign_dist"], x["cpu_sign_update"],
          x["sign_update"], x["cpu_verify_same"], x["verify_same"], x["cpu_verify_dist"], x["verify_dist"],
          x["cpu_import"], x["import"], x["cpu_tam_us"], x["tam_us"], x["cpu_agent_us"], x["agent_us"]))
' "$cores" "$(for i in $(seq 0 "$nrow"); do printf '%s|' "$tmp/bound$i.txt"; done | sed 's/|$//')" "$(IFS='|'; echo "${rows[*]}")"
for note in "${notes[@]}"; do echo "note: $note"; done
[ -n "$peak" ] || exit 0
rate_line=$(jget "$tmp/rate.json" '"target %.1f/s, achieved %.1f/s, missed starts %d; p99 ms: QueryRequest %.2f, QueryResponse %.2f, Success %.2f (p50 QueryRequest %.2f)" % (d["rate"], d["sessions_per_s"], d["counts"]["rate_missed"], d["latency_ms"]["query_request"]["p99"], d["latency_ms"]["query_response"]["p99"], d["latency_ms"]["update_result"]["p99"], d["latency_ms"]["query_request"]["p50"])')
echo
echo "at half of the ESP256 1 + 1 peak ($peak/s), open loop: $rate_line (target: QueryRequest p99 < 2 ms)"
echo "gateway RSS with $held idle keep-alive connections ($idle_ok opened by tam-agent idle): $(py "print('%.1f MiB (before: %.1f MiB, %.2f KiB per connection)' % ($rss1/1024, $rss0/1024, ($rss1-$rss0)/max(1,$idle_n)))") (target < 64 MiB)"
echo "machine: $cores cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load average (1/5/15 min) $load0 at the start, $load at the end; $secs s per load run, $wrk_s s per wrk run${quick:+, quick}"
