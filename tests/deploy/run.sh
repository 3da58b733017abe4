#!/usr/bin/env bash
# Deployment tests (issue #7): everything under deploy/ works as shipped.
#
#   bash tests/deploy/run.sh          (as root; Podman, no Docker daemon, no image registry)
#
# 1. static: shell syntax, compose file, systemd units (systemd-analyze verify + offline
#    security score);
# 2. Kubernetes: kustomize renders base and overlays, every object validated offline against
#    the Kubernetes schemas (npm kubernetes-models, strict fields, cross references), and the
#    validator must reject deliberately broken manifests;
# 3. single host: the units, sysusers file and sample configuration installed as the README
#    says in a Debian 12 container that boots systemd, then the simulated fleet against it;
# 4. images: Debian 12 base by debootstrap (cached in /var/tmp/tamgate-ci-base.tar), the
#    multi-stage image and the Redis image built with Podman;
# 5. stack: podman-compose up of deploy/compose.yaml (Redis + gateway + 2 workers), the
#    simulated fleet from the host over loopback (every session must complete), hardening
#    checks, SIGTERM drain, then everything stopped and removed.
# Container storage, configuration and temp files live in one per-run directory, removed at
# the end (traps). Network traffic stays on 127.0.0.1 and Podman's own bridge networks.
# Prints PASS/FAIL/SKIP lines, phase timings and finally "N passed, N failed"; exit 1 on
# any failure. Environment: TAM_DEPLOY_BUILD (host build dir, default build-deploy),
# TAMGATE_BASE_CACHE (see deploy/base-image.sh), TAM_DEPLOY_KEEP=1 (keep the run dir).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
ROOT=$PWD
T_START=$(date +%s)
passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "SKIP: $*"; }
check() {
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
phase_t=$(date +%s)
phase() {
  local now
  now=$(date +%s)
  echo "== $* (+$((now - phase_t)) s since the previous phase, $((now - T_START)) s total)"
  phase_t=$now
}
finish() {
  echo "deploy tests: $(($(date +%s) - T_START)) s"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit $?
}

if [ "$(id -u)" != 0 ]; then
  echo "tests/deploy/run.sh: run as root (podman, debootstrap)" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

# ---- prerequisites (Debian packages; the CI machine kind has them or installs them) ----
need=()
for p in podman:podman runc:runc debootstrap:debootstrap podman-compose:podman-compose \
  redis-server:redis-server openssl:openssl meson:meson ninja:ninja-build; do
  command -v "${p%%:*}" >/dev/null || need+=("${p#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null && timeout 600 apt-get install -y -qq "${need[@]}" >/dev/null ||
    { fail "apt-get install ${need[*]}"; finish; }
fi

# ---- the per-run directory, Podman configuration, cleanup ----
W=$(mktemp -d /tmp/tamgate-deploy.XXXXXX)
PROJECT=tgci$$
NET="${PROJECT}_default"
cat >"$W/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$W/libpod"
EOF
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$W" "$W" >"$W/storage.conf"
export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"
export TMPDIR="$W/tmp"
mkdir -p "$TMPDIR"

cleanup() {
  set +e
  # Background jobs of this script (builds), by process id.
  for pid in $(jobs -p); do
    pkill -TERM -P "$pid" 2>/dev/null
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in $(jobs -p); do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  if [ -f "$W/storage.conf" ]; then
    (cd deploy && timeout 60 podman-compose -p "$PROJECT" down -t 2 >/dev/null 2>&1)
    timeout 60 podman rm -af -t 0 >/dev/null 2>&1
    timeout 60 podman pod rm -af -t 0 >/dev/null 2>&1
    # Only this run's network: network definitions are shared by every podman on the host.
    timeout 30 podman network rm -f "$NET" >/dev/null 2>&1
    timeout 60 podman volume rm -af >/dev/null 2>&1
    timeout 120 podman rmi -af >/dev/null 2>&1
  fi
  grep -o " $W/[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount -l "$m"; done
  if [ "${TAM_DEPLOY_KEEP:-0}" = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_http URL SECONDS: until the URL answers 200.
wait_http() {
  local url=$1 n=$(($2 * 5))
  for _ in $(seq "$n"); do
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url")" = 200 ] && return 0
    sleep 0.2
  done
  return 1
}
# fleet_ok JSON_FILE: the load report says sessions ran and none failed.
fleet_ok() {
  python3 - "$1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"fleet: {d['sessions']} sessions, {d['sessions_ok']} ok, {d['sessions_failed']} failed, "
      f"errors {d['errors']}, {d['sessions_per_s']:.0f} sessions/s")
sys.exit(0 if d["sessions"] > 0 and d["sessions_ok"] == d["sessions"]
         and d["sessions_failed"] == 0 and not d["errors"] else 1)
EOF
}

# ---- 1. static checks ----
phase "static checks"
shell_ok() {
  local f
  for f in deploy/*.sh deploy/healthcheck.sh tests/deploy/run.sh; do bash -n "$f" || return 1; done
}
check "shell scripts parse (bash -n)" shell_ok
compose_ok() {
  # podman-compose 1.0.3 has no `config` and its --dry-run still creates networks: parse it.
  python3 - deploy/compose.yaml <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
s = doc["services"]
assert set(s) == {"redis", "tamd", "worker"}, s.keys()
assert "--appendonly" in s["redis"]["command"] and "redis-data:/data" in s["redis"]["volumes"]
assert "redis-data" in doc["volumes"]
assert s["worker"]["deploy"]["replicas"] == "${TAMGATE_WORKER_REPLICAS:-2}"
admin = [p for p in s["tamd"]["ports"] if p.endswith(":9080")]
assert admin and all(p.startswith("127.0.0.1:") for p in admin), admin
for n in ("tamd", "worker"):
    c = s[n]
    assert c["read_only"] is True and c["user"] == "10001:10001" and "ALL" in c["cap_drop"], n
    assert "no-new-privileges" in c["security_opt"], n
    assert any(v.endswith(":/etc/tamgate/keys:ro") for v in c["volumes"]), n
    assert c["environment"]["TAMGATE_REDIS"] == "redis:6379", n
EOF
}
check "compose.yaml: redis AOF + volume, 2 workers, admin on loopback only, hardened" compose_ok
if command -v yamllint >/dev/null; then
  check "yamllint (relaxed) of deploy/" yamllint -d relaxed deploy/compose.yaml deploy/k8s
else
  echo "note: yamllint not installed (apt-get install yamllint); the YAML parsers below still check syntax"
fi

systemd_ok() {
  command -v systemd-analyze >/dev/null || { skip "systemd-analyze not installed"; return 0; }
  local d=$W/systemd f out
  mkdir -p "$d/bin"
  # systemd-analyze verify wants the ExecStart programs to exist: stand-ins at another path.
  printf '#!/bin/sh\nexit 0\n' >"$d/bin/tamd"
  cp "$d/bin/tamd" "$d/bin/tam-worker"
  chmod +x "$d/bin/tamd" "$d/bin/tam-worker"
  for f in deploy/systemd/*.service deploy/systemd/*.target; do
    sed "s#/usr/local/bin/#$d/bin/#g" "$f" >"$d/$(basename "$f")"
  done
  cp "$d/tam-worker@.service" "$d/tam-worker@1.service"
  out=$(cd "$d" && systemd-analyze verify --man=no ./tamd.service ./tam-worker@1.service ./tamgate.target 2>&1)
  [ -z "$out" ] || { echo "$out"; return 1; }
  for f in tamd.service tam-worker@1.service; do
    out=$(cd "$d" && systemd-analyze security --offline=yes "./$f" 2>&1 | grep 'Overall exposure')
    echo "  $out"
    # "1.5 OK": anything above 2.0 means a sandboxing line was lost.
    awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+\.[0-9]+$/) exit !($i <= 2.0); exit 1}' <<<"$out" || return 1
  done
}
check "systemd units: verify clean, exposure <= 2.0" systemd_ok

# ---- 2. Kubernetes manifests, offline ----
phase "Kubernetes manifests"
VAL_DIR=${TAMGATE_K8S_VALIDATE_DIR:-/var/tmp/tamgate-k8s-validate}
k8s_tools_ok() {
  command -v node >/dev/null || return 1
  [ -d "$VAL_DIR/node_modules/kubernetes-models" ] && [ -d "$VAL_DIR/node_modules/yaml" ] && return 0
  mkdir -p "$VAL_DIR"
  timeout 300 npm install --prefix "$VAL_DIR" --no-audit --no-fund --silent kubernetes-models@5 yaml@2 >/dev/null 2>&1
}
if check "validator tools (node, npm kubernetes-models@5 yaml@2 in $VAL_DIR)" k8s_tools_ok; then
  export NODE_PATH="$VAL_DIR/node_modules"
  # The validator's own summary would look like this script's final line: keep it in a log.
  validate() {
    node deploy/k8s/validate.mjs "$@" >"$W/validate.log" 2>&1 || { cat "$W/validate.log"; return 1; }
    grep -h 'objects,' "$W/validate.log" | sed 's/^/  /'
  }
  cp -r deploy/k8s "$W/k8s"
  bash deploy/gen-keys.sh "$W/k8s/overlays/example/keys" >/dev/null
  rendered=()
  if command -v kubectl >/dev/null; then
    for k in base overlays/example overlays/managed-redis; do
      out="$W/k8s-$(basename "$k").yaml"
      check "kubectl kustomize deploy/k8s/$k" sh -c "kubectl kustomize '$W/k8s/$k' >'$out'"
      rendered+=("$out")
    done
  else
    skip "kubectl not installed: kustomize rendering skipped, validating the base files one by one"
  fi
  if [ ${#rendered[@]} -gt 0 ]; then
    check "validate rendered base" validate --external Secret/tamgate-keys "$W/k8s-base.yaml"
    check "validate rendered overlays/example (with its Secret and KEDA ScaledObject)" \
      validate "$W/k8s-example.yaml"
    check "validate rendered overlays/managed-redis" \
      validate --external Secret/tamgate-keys "$W/k8s-managed-redis.yaml"
    render_ok() {
      python3 - "$W/k8s-example.yaml" <<'EOF'
import sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
kinds = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] in ("ConfigMap", "Secret")
          else o["metadata"]["name"]) for o in objs}
want = {("Deployment", "tamgate-gateway"), ("Deployment", "tamgate-worker"),
        ("StatefulSet", "tamgate-redis"), ("Service", "tamgate"),
        ("HorizontalPodAutoscaler", "tamgate-gateway"), ("PodDisruptionBudget", "tamgate-gateway"),
        ("PodDisruptionBudget", "tamgate-worker"), ("ConfigMap", "tamgate-config"),
        ("Secret", "tamgate-keys"), ("ScaledObject", "tamgate-worker")}
assert want <= kinds, want - kinds
for o in objs:
    if o["kind"] not in ("Deployment", "StatefulSet"):
        continue
    ps = o["spec"]["template"]["spec"]
    assert ps["securityContext"]["runAsNonRoot"] is True, o["metadata"]["name"]
    for c in ps["containers"]:
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["requests"] and c["resources"]["limits"], c["name"]
        if o["metadata"]["name"] == "tamgate-gateway":
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert o["metadata"]["namespace"] == "tamgate"
EOF
    }
    check "overlays/example: every object present, non-root, read-only root, probes, resources" render_ok
  else
    for f in deploy/k8s/base/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] || { echo "---"; cat "$f"; }
    done >"$W/k8s-base.yaml"
    check "validate the base files (not rendered)" validate --external Secret/tamgate-keys \
      --external ConfigMap/tamgate-config --external ConfigMap/tamgate-env "$W/k8s-base.yaml"
  fi
  # The validator must catch what a typo produces (otherwise a broken check passes silently).
  src=$W/k8s-base.yaml
  mutant_fails() {
    python3 - "$src" "$1" "$2" >"$W/mutant.yaml" <<'EOF'
import sys
s, a, b = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
assert a in s, a
print(s.replace(a, b, 1), end="")
EOF
    ! node deploy/k8s/validate.mjs --external Secret/tamgate-keys --external ConfigMap/tamgate-config \
      --external ConfigMap/tamgate-env "$W/mutant.yaml" >/dev/null 2>&1
  }
  check "validator rejects a misspelt field (readinesProbe)" mutant_fails "readinessProbe:" "readinesProbe:"
  check "validator rejects a wrong type (replicas: two)" mutant_fails "replicas: 2" "replicas: two"
  check "validator rejects a bad quantity (memory: 64Mx)" mutant_fails "memory: 64Mi" "memory: 64Mx"
  check "validator rejects a probe on an undefined port" mutant_fails "port: admin" "port: admn"
  if [ ${#rendered[@]} -gt 0 ]; then
    check "validator rejects a dangling HPA target" mutant_fails "    kind: Deployment
    name: tamgate-gateway" "    kind: Deployment
    name: tamgate-gatewy"
  fi
fi

# ---- host build: tamd, tam-worker and tam-agent for the native and fleet checks ----
phase "host build"
BUILD=${TAM_DEPLOY_BUILD:-build-deploy}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
host_build() {
  if [ ! -f "$BUILD/build.ninja" ]; then
    meson setup "$BUILD" --buildtype=release -Dtests=false -Dfuzz=none >"$W/meson.log" 2>&1 ||
      { tail -20 "$W/meson.log"; return 1; }
  fi
  # Only the programs: a benchmark or test being written elsewhere must not fail this.
  local targets
  timeout 300 ninja -C "$BUILD" build.ninja >"$W/ninja.log" 2>&1 || { tail -20 "$W/ninja.log"; return 1; }
  targets=$(ninja -C "$BUILD" -t targets all |
    sed -n 's#^\(src/[a-z]*/\(tamd\|tam-worker\|tam-agent\|tamctl\)\): .*#\1#p')
  echo "  host build: $(echo $targets)"
  timeout 900 ninja -C "$BUILD" $targets >"$W/ninja.log" 2>&1 || { tail -40 "$W/ninja.log"; return 1; }
}
# The image build below does not need it: build in the background meanwhile.
host_build >"$W/host-build.out" 2>&1 &
HOST_BUILD_PID=$!

# ---- 4. images ----
phase "images"
IMG=localhost/tamgate:ci
REDIS_IMG=localhost/tamgate-redis:ci
BASE_IMG=localhost/debian-bookworm:base
t0=$(date +%s)
check "base image: Debian 12 by debootstrap (rootfs cached between runs)" timeout 600 bash deploy/base-image.sh "$BASE_IMG"
echo "  base image: $(($(date +%s) - t0)) s"
t0=$(date +%s)
build_image() { # TARGET TAG LOG
  local target=()
  [ -n "$1" ] && target=(--target "$1")
  timeout 1200 podman build --ignorefile deploy/Containerfile.dockerignore \
    --build-arg "BASE=$BASE_IMG" -f deploy/Containerfile "${target[@]}" -t "$2" . >"$3" 2>&1 ||
    { tail -40 "$3"; return 1; }
}
build_image redis "$REDIS_IMG" "$W/build-redis.log" &
redis_build=$!
# The single-host test machine: Debian 12 with systemd as PID 1, the distribution's Redis,
# the runtime libraries, and deploy/systemd/* installed as the README says (the programs
# come from the host build at run time).
SD_IMG=localhost/tamgate-systemd-test:ci
mkdir -p "$W/sd-ctx"
cp deploy/systemd/tamd.service deploy/systemd/tam-worker@.service deploy/systemd/tamgate.target \
  deploy/systemd/tamgate.conf deploy/systemd/tamgate.ini "$W/sd-ctx/"
bash deploy/gen-keys.sh "$W/sd-ctx/keys" >/dev/null
cat >"$W/sd-ctx/Containerfile" <<EOF
FROM $BASE_IMG
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
      systemd systemd-sysv redis-server curl \\
      libuv1 libwolfssl35 libcbor0.8 libhiredis0.14 libjansson4 libinih1 \\
 && rm -rf /var/lib/apt/lists/*
COPY tamd.service tam-worker@.service tamgate.target /etc/systemd/system/
COPY tamgate.conf /etc/sysusers.d/tamgate.conf
COPY tamgate.ini /etc/tamgate/tamgate.ini
COPY --chown=10001:10001 keys/tam.pem keys/attester.pub.pem /etc/tamgate/keys/
RUN sed -i 's/^appendonly no/appendonly yes/' /etc/redis/redis.conf \\
 && systemctl enable tamgate.target redis-server.service
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
EOF
(timeout 900 podman build -t "$SD_IMG" "$W/sd-ctx" >"$W/build-systemd.log" 2>&1 || { tail -30 "$W/build-systemd.log"; exit 1; }) &
sd_build=$!
check "podman build deploy/Containerfile (multi-stage: meson build, small runtime)" \
  build_image "" "$IMG" "$W/build.log"
check "podman build --target redis" wait "$redis_build"
wait "$sd_build"
sd_image=$?
check "podman build of the systemd single-host test image" test "$sd_image" = 0
echo "  image builds: $(($(date +%s) - t0)) s"
image_ok() {
  podman image exists "$IMG" || return 1
  local user ep size
  user=$(podman image inspect -f '{{.Config.User}}' "$IMG")
  ep=$(podman image inspect -f '{{join .Config.Entrypoint " "}}' "$IMG")
  size=$(podman image inspect -f '{{.Size}}' "$IMG")
  echo "  image: user $user, entrypoint $ep, $((size / 1000000)) MB"
  [ "$user" = 10001:10001 ] && [ "$ep" = "/usr/bin/tini --" ] && [ "$size" -lt 250000000 ] &&
    podman run --rm --read-only --network none "$IMG" tamctl --help >/dev/null 2>&1 || return 1
  # Every shared library the programs need is in the runtime image.
  podman run --rm --network none --entrypoint /bin/sh "$IMG" -c \
    'for p in /usr/local/bin/*; do
       if ldd "$p" 2>/dev/null | grep "not found"; then echo "$p: missing library"; exit 1; fi
     done'
}
check "image: uid 10001, tini as PID 1, < 250 MB, runs with a read-only root" image_ok
have_programs=0
if podman image exists "$IMG" &&
  podman run --rm --network none --entrypoint /bin/sh "$IMG" -c \
    'command -v tamd && command -v tam-worker' >/dev/null 2>&1; then
  have_programs=1
fi

wait "$HOST_BUILD_PID"
host_rc=$?
cat "$W/host-build.out"
check "host build ($BUILD)" test "$host_rc" = 0
AGENT=$BUILD/src/agent/tam-agent
TAMD=$BUILD/src/gateway/tamd
WORKER=$BUILD/src/worker/tam-worker

# ---- 3. single host: the systemd units for real (systemd as PID 1 in a container) ----
phase "single host (systemd units, sample configuration)"
if [ ! -x "$TAMD" ] || [ ! -x "$WORKER" ] || [ ! -x "$AGENT" ] || [ "$sd_image" != 0 ]; then
  skip "tamd not built yet (single-host systemd run: tamd, tam-worker, tam-agent or the test image missing)"
else
  C_SD=${PROJECT}_systemd
  sd_exec() { timeout 30 podman exec "$C_SD" "$@"; }
  systemd_host() {
    local tport i pid st
    tport=$(free_port)
    # The README's install: binaries in /usr/local/bin (the host build, mounted), units,
    # sysusers file, tamgate.ini and keys as shipped (in the test image), tamgate.target on.
    timeout 60 podman run -d --name "$C_SD" --systemd=always -p "127.0.0.1:$tport:8080" \
      -v "$TAMD:/usr/local/bin/tamd:ro" -v "$WORKER:/usr/local/bin/tam-worker:ro" \
      "$SD_IMG" >/dev/null 2>&1 || return 1
    # Until systemd's bus is up, then until the boot is over (bounded: 150 x 0.2 s).
    for i in $(seq 150); do
      st=$(sd_exec systemctl is-system-running --wait 2>&1)
      case $st in running | degraded | maintenance | stopping) break ;; esac
      sleep 0.2
    done
    echo "  systemd: $st"
    [ "$st" = running ] || { sd_exec systemctl --failed --no-pager; sd_exec journalctl -n 15 --no-pager; return 1; }
    for i in $(seq 100); do
      [ "$(sd_exec curl -s -m 2 http://127.0.0.1:9080/readyz 2>/dev/null)" = ready ] && break
      [ "$i" = 100 ] && { echo "  /readyz never answered"; sd_exec journalctl -u tamd -n 20 --no-pager; return 1; }
      sleep 0.2
    done
    for u in tamd tam-worker@1 tam-worker@2 redis-server; do
      [ "$(sd_exec systemctl is-active "$u")" = active ] || { echo "  $u is not active"; return 1; }
    done
    # The sandbox is in force: user tamgate (made by systemd-sysusers from tamgate.conf),
    # no new privileges, seccomp filter, no capabilities; procs = 2 gateway children.
    for u in tamd tam-worker@1; do
      pid=$(sd_exec systemctl show -p MainPID --value "$u")
      sd_exec cat "/proc/$pid/status" >"$W/sd-status" || return 1
      awk '/^Uid:/ {u = $2} /^NoNewPrivs:/ {n = $2} /^Seccomp:/ {s = $2} /^CapEff:/ {c = $2}
        END {printf "  %s: uid %s, NoNewPrivs %s, Seccomp %s, CapEff %s\n", unit, u, n, s, c
             exit !(u == 10001 && n == 1 && s == 2 && c == "0000000000000000")}' unit="$u" "$W/sd-status" ||
        return 1
    done
    [ "$(sd_exec id -un 10001)" = tamgate ] || return 1
    sd_exec journalctl -u tamd --no-pager >"$W/sd-tamd.log" 2>&1
    [ "$(grep -c 'event=child_started kind=gateway' "$W/sd-tamd.log")" -ge 2 ] ||
      { echo "  tamd did not start 2 gateway processes"; tail -20 "$W/sd-tamd.log"; return 1; }
    timeout 60 "$AGENT" load --url "http://127.0.0.1:$tport/tam/demo" --tam-key "$W/sd-ctx/keys/tam.pub.pem" \
      --attester-key "$W/sd-ctx/keys/attester.pem" --devices 20 --concurrency 8 --duration 3 --json \
      >"$W/sd-fleet.json" 2>"$W/sd-fleet.err" || { cat "$W/sd-fleet.err"; return 1; }
    fleet_ok "$W/sd-fleet.json" || return 1
    # systemctl stop: SIGTERM, drain, exit 0.
    sd_exec systemctl stop tamgate.target || return 1
    st=$(sd_exec systemctl show -p Result -p ExecMainStatus --value tamd | tr '\n' ' ')
    echo "  tamd stopped: $st"
    [ "$st" = "success 0 " ] || return 1
  }
  check "single host: systemd runs tamd (procs=2) and 2 tam-worker@ sandboxed as tamgate; fleet completes; stop exits 0" systemd_host
  timeout 60 podman rm -f -t 5 "$C_SD" >/dev/null 2>&1
fi

# ---- 5. the stack: podman-compose up, fleet, drain, down ----
phase "compose stack"
# (Both images must exist here: podman would otherwise try to pull them from a registry.)
if [ "$have_programs" != 1 ] || [ ! -x "$AGENT" ] || ! podman image exists "$REDIS_IMG"; then
  skip "tamd not built yet (compose stack run: the images or the host build lack tamd, tam-worker or tam-agent)"
  finish
fi
KEYS=$W/keys
bash deploy/gen-keys.sh "$KEYS" >/dev/null
TEEP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
export TAMGATE_IMAGE=$IMG TAMGATE_REDIS_IMAGE=$REDIS_IMG TAMGATE_KEYS_DIR=$KEYS
export TAMGATE_TEEP_BIND=127.0.0.1 TAMGATE_TEEP_PORT=$TEEP_PORT TAMGATE_ADMIN_PORT=$ADMIN_PORT
C_TAMD=${PROJECT}_tamd_1
C_REDIS=${PROJECT}_redis_1
C_W1=${PROJECT}_worker_1
C_W2=${PROJECT}_worker_2
t0=$(date +%s)
check "podman-compose up -d" sh -c "cd deploy && timeout 180 podman-compose -p '$PROJECT' up -d >'$W/compose-up.log' 2>&1 || { tail -30 '$W/compose-up.log'; exit 1; }"
check "gateway /readyz answers 200 on 127.0.0.1:$ADMIN_PORT (Redis connected)" \
  wait_http "http://127.0.0.1:$ADMIN_PORT/readyz" 60
echo "  stack up: $(($(date +%s) - t0)) s"
running_ok() {
  local c
  for c in "$C_REDIS" "$C_TAMD" "$C_W1" "$C_W2"; do
    [ "$(podman inspect -f '{{.State.Running}}' "$c" 2>/dev/null)" = true ] || { echo "$c is not running"; return 1; }
  done
}
check "redis, tamd and two workers running" running_ok
hardening_ok() {
  local c
  for c in "$C_TAMD" "$C_W1"; do
    [ "$(podman exec "$c" id -u)" = 10001 ] || return 1
    ! podman exec "$c" sh -c 'echo x >/usr/local/bin/x' 2>/dev/null || return 1
    [ "$(podman exec "$c" cat /proc/1/comm)" = tini ] || return 1
  done
  # The admin port is published on loopback only.
  [[ "$(podman port "$C_TAMD")" == *"9080/tcp -> 127.0.0.1:$ADMIN_PORT"* ]] || return 1
  podman exec "$C_TAMD" tamgate-healthcheck /healthz
}
check "containers: uid 10001, read-only root, tini PID 1, admin on loopback, healthcheck script" hardening_ok
aof_ok() {
  [[ "$(podman exec "$C_REDIS" redis-cli CONFIG GET appendonly)" == *yes* ]] &&
    podman volume exists "${PROJECT}_redis-data" &&
    podman exec "$C_REDIS" ls /data/appendonlydir >/dev/null
}
check "redis: AOF on, data on the named volume" aof_ok
fleet() {
  timeout 90 "$AGENT" load --url "http://127.0.0.1:$TEEP_PORT/tam/demo" --tam-key "$KEYS/tam.pub.pem" \
    --attester-key "$KEYS/attester.pem" --devices 50 --concurrency 16 --duration 5 --json \
    >"$W/fleet.json" 2>"$W/fleet.err" || { cat "$W/fleet.err"; return 1; }
  fleet_ok "$W/fleet.json"
}
check "simulated fleet from the host (50 devices, 5 s): every session completed" fleet
metrics_ok() {
  curl -s -m 5 "http://127.0.0.1:$ADMIN_PORT/metrics" >"$W/metrics.txt" || return 1
  awk '$1 == "tam_gw_results_total" && $2 > 0 {ok = 1} END {exit !ok}' "$W/metrics.txt" &&
    awk '$1 == "tam_redis_connected" && $2 == 1 {ok = 1} END {exit !ok}' "$W/metrics.txt"
}
check "gateway /metrics: results delivered, Redis connected" metrics_ok
workers_ok() {
  local c n
  for c in "$C_W1" "$C_W2"; do
    n=$(podman logs "$c" 2>&1 | grep -c 'event=job ')
    echo "  $c: $n jobs"
    [ "$n" -gt 0 ] || return 1
  done
}
check "both workers took jobs from the stream" workers_ok
drain_ok() {
  local t rc
  t=$(date +%s)
  timeout 60 podman stop -t 25 "$C_TAMD" >/dev/null 2>&1 || return 1
  rc=$(podman inspect -f '{{.State.ExitCode}}' "$C_TAMD")
  echo "  tamd stopped in $(($(date +%s) - t)) s, exit code $rc"
  # SIGTERM reached tamd through tini (a SIGKILL after the timeout would be 137).
  podman logs "$C_TAMD" >"$W/tamd.log" 2>&1
  [ "$rc" = 0 ] && [ $(($(date +%s) - t)) -lt 20 ] &&
    grep -q 'event=gateway_draining' "$W/tamd.log" && grep -q 'event=exit code=0' "$W/tamd.log"
}
check "SIGTERM: tamd drains and exits 0 (podman stop)" drain_ok
if [ "$failed" != 0 ]; then
  for c in "$C_TAMD" "$C_W1" "$C_REDIS"; do
    echo "---- last log lines of $c"
    podman logs "$c" 2>&1 | tail -15
  done
fi
down_ok() {
  (cd deploy && timeout 120 podman-compose -p "$PROJECT" down -t 10 >"$W/compose-down.log" 2>&1) || return 1
  timeout 30 podman network rm -f "$NET" >/dev/null 2>&1
  timeout 30 podman volume rm -f "${PROJECT}_redis-data" >/dev/null 2>&1
  [ -z "$(podman ps -aq)" ] && ! podman network exists "$NET" && ! podman volume exists "${PROJECT}_redis-data"
}
check "podman-compose down: no container, network or volume left" down_ok
phase "done"
finish
