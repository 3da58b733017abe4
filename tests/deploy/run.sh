#!/usr/bin/env bash
# Deployment tests (issue #7): everything under deploy/ works as shipped.
#
#   bash tests/deploy/run.sh          (as root; Podman, no Docker daemon, no image registry)
#
# 1. static: shell syntax, compose file (hardening; which secret goes to which role),
#    yamllint, systemd units (systemd-analyze verify + offline security score);
# 2. Kubernetes: kustomize renders base and overlays (example, managed-redis,
#    scale-on-pending and its KEDA variant), every object validated offline against the
#    Kubernetes schemas (npm kubernetes-models, strict fields, cross references), the
#    secrets split between gateways and workers, secrets.example.yaml and
#    gen-secrets.sh --k8s; the validator must reject deliberately broken manifests;
# 3. single host: the units, sysusers file and sample configuration installed as the README
#    says in a Debian 12 container that boots systemd, then the simulated fleet against it;
# 4. images: Debian 12 base by debootstrap (cached in /var/tmp/tamgate-ci-base.tar), the
#    multi-stage image and the Redis image built with Podman;
# 5. stack: podman-compose up of deploy/compose.yaml (Redis + gateway + 2 workers), the
#    deployment secrets (deploy/gen-secrets.sh) mounted per role, the simulated fleet from
#    the host over loopback (every session must complete), hardening checks, SIGTERM drain,
#    then everything stopped and removed.
# It installs what it needs (deploy/install-deps.sh, then Podman, runc, podman-compose,
# debootstrap, yamllint, ... from Debian and the validator's npm packages) and works cold: its
# two caches (the debootstrap rootfs, the npm packages) are filled on the first run. CI
# (.ci/run) runs it after the unit tests.
# Container storage, configuration and temp files live in one per-run directory, removed at
# the end (traps). Network traffic stays on 127.0.0.1 and Podman's own bridge networks.
# Prints PASS/FAIL/SKIP lines, phase timings and finally "N passed, N failed"; exit 1 on
# any failure. Environment: TAM_DEPLOY_BUILD (host build dir, default build-deploy),
# TAMGATE_BASE_CACHE (see deploy/base-image.sh), TAMGATE_K8S_VALIDATE_DIR (the validator's
# npm packages, default /var/tmp/tamgate-k8s-validate), TAM_DEPLOY_KEEP=1 (keep the run dir).
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

# ---- prerequisites: the build's packages, then the deployment tools (Debian packages) ----
# Python: Debian's, which has python3-yaml (a pyenv or venv python3 first on PATH may not).
PY=/usr/bin/python3
t0=$(date +%s)
timeout 900 bash deploy/install-deps.sh || { fail "deploy/install-deps.sh"; finish; }
# podman with netavark + aardvark-dns (compose service names resolve; without them apt may
# pick the CNI plugins), runc (crun fails on this machine kind's hybrid cgroup layout:
# ../shared/CONTAINERS.md), uidmap for rootless use, podman-compose, debootstrap and the
# archive keyring for the registry-less base image, yamllint, python3-yaml for the compose
# checks, systemd for systemd-analyze. Recommends are wanted (slirp4netns, catatonit, ...).
debs=(podman netavark aardvark-dns runc uidmap podman-compose debootstrap debian-archive-keyring
  yamllint python3-yaml python3 curl openssl systemd redis-server)
need=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
# Node.js and npm for the Kubernetes validator: any install will do (this kind has them
# outside dpkg); Debian's otherwise.
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -qq >/dev/null &&
    timeout 900 apt-get install -y -qq "${need[@]}" >/dev/null ||
    { fail "apt-get install ${need[*]}"; finish; }
fi
echo "  prerequisites: $(($(date +%s) - t0)) s"

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

# What tamd and tam-worker in this tree implement: checks of newer features follow the source
# they test (a tree without the feature skips them, a tree with it must pass them).
src_has() { grep -rqsF --include='*.c' -e "$1" src/gateway src/worker; }
free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
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
  "$PY" - "$1" <<'EOF'
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
  "$PY" - deploy/compose.yaml <<'EOF'
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
compose_secrets_ok() {
  "$PY" - deploy/compose.yaml <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
s = doc["services"]
# The deployment secrets: the KEK into both roles, the private worker sealing key into the
# workers only, its public half into tamd; each mounted where the role's option points.
declared = doc["secrets"]
assert set(declared) == {"kek", "worker_seal_key", "worker_seal_pub"}, declared
assert all(d["file"].startswith("${TAMGATE_SECRETS_DIR:-./secrets}/") for d in declared.values())
def mounts(n):
    return {m["source"]: m["target"] for m in s[n]["secrets"]}
want = {"tamd": {"kek": "TAMGATE_KEK_FILE", "worker_seal_pub": "TAMGATE_WORKER_SEAL_PUB"},
        "worker": {"kek": "TAMGATE_KEK_FILE", "worker_seal_key": "TAMGATE_WORKER_SEAL_KEY"}}
for n, w in want.items():
    m = mounts(n)
    assert set(m) == set(w), (n, m)
    for src, env in w.items():
        assert s[n]["environment"][env] == m[src], (n, env, m[src])
    assert not [v for v in s[n].get("volumes", []) if "secrets" in v.split(":")[0]], n
assert "TAMGATE_WORKER_SEAL_KEY" not in s["tamd"]["environment"]
# The operator token goes to tamd's data directory, a named volume (not a tmpfs: it must
# survive a restart, and Podman's tmpfs would not be writable by uid 10001).
tok = s["tamd"]["environment"]["TAMGATE_OPERATOR_TOKEN_FILE"]
assert "tamd-data:/var/lib/tamgate" in s["tamd"]["volumes"] and tok.startswith("/var/lib/tamgate/")
assert "/var/lib/tamgate" not in s["tamd"]["tmpfs"] and "tamd-data" in doc["volumes"]
EOF
}
check "compose.yaml: KEK into tamd and workers, worker sealing key into workers only, its public half into tamd" compose_secrets_ok
if command -v yamllint >/dev/null; then
  check "yamllint (relaxed, errors only) of deploy/" yamllint --no-warnings -d relaxed deploy/compose.yaml deploy/k8s
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
  local t=$(date +%s)
  timeout 300 npm install --prefix "$VAL_DIR" --no-audit --no-fund --no-save kubernetes-models@5 yaml@2 \
    >"$W/npm.log" 2>&1 || { tail -20 "$W/npm.log"; return 1; }
  echo "  npm install: $(($(date +%s) - t)) s"
}
if check "validator tools (node, npm kubernetes-models@5 yaml@2 in $VAL_DIR)" k8s_tools_ok; then
  export NODE_PATH="$VAL_DIR/node_modules"
  # The validator's own summary would look like this script's final line: keep it in a log.
  validate() {
    node deploy/k8s/validate.mjs "$@" >"$W/validate.log" 2>&1 || { cat "$W/validate.log"; return 1; }
    grep -h 'objects,' "$W/validate.log" | sed 's/^/  /'
  }
  # Objects the base uses and an overlay (or the operator) creates.
  EXT=(--external Secret/tamgate-keys --external Secret/tamgate-kek --external Secret/tamgate-worker-seal
    --external Secret/tamgate-worker-seal-pub)
  cp -r deploy/k8s "$W/k8s"
  bash deploy/gen-keys.sh "$W/k8s/overlays/example/keys" >/dev/null
  bash deploy/gen-secrets.sh "$W/k8s/overlays/example/secrets" >/dev/null
  # scale-on-pending's KEDA variant: its ScaledObject in place of the HPA.
  mkdir -p "$W/k8s/overlays/scale-on-pending-keda"
  cp "$W/k8s/overlays/scale-on-pending/keda-prometheus-scaledobject.yaml" "$W/k8s/overlays/scale-on-pending-keda/"
  sed 's#^  - worker-hpa.yaml$#  - keda-prometheus-scaledobject.yaml#' \
    "$W/k8s/overlays/scale-on-pending/kustomization.yaml" >"$W/k8s/overlays/scale-on-pending-keda/kustomization.yaml"
  rendered=()
  if command -v kubectl >/dev/null; then
    for k in base overlays/example overlays/managed-redis overlays/scale-on-pending overlays/scale-on-pending-keda; do
      out="$W/k8s-$(basename "$k").yaml"
      check "kubectl kustomize deploy/k8s/$k" sh -c "kubectl kustomize '$W/k8s/$k' >'$out'"
      rendered+=("$out")
    done
  else
    skip "kubectl not installed: kustomize rendering skipped, validating the base files one by one"
  fi
  if [ ${#rendered[@]} -gt 0 ]; then
    check "validate rendered base" validate "${EXT[@]}" "$W/k8s-base.yaml"
    check "validate rendered overlays/example (with its Secrets and KEDA ScaledObject)" \
      validate "$W/k8s-example.yaml"
    check "validate rendered overlays/managed-redis" \
      validate "${EXT[@]}" "$W/k8s-managed-redis.yaml"
    check "validate rendered overlays/scale-on-pending (worker HPA on the external metric tam_jobs_pending)" \
      validate "${EXT[@]}" "$W/k8s-scale-on-pending.yaml"
    check "validate scale-on-pending with its KEDA prometheus ScaledObject instead" \
      validate "${EXT[@]}" "$W/k8s-scale-on-pending-keda.yaml"
    pending_ok() {
      "$PY" - "$W/k8s-scale-on-pending.yaml" "$W/k8s-scale-on-pending-keda.yaml" <<'EOF'
import sys, yaml
for f, kind in zip(sys.argv[1:], ("HorizontalPodAutoscaler", "ScaledObject")):
    objs = [o for o in yaml.safe_load_all(open(f)) if o]
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    # Exactly one autoscaler owns the worker count, and nothing resets it.
    assert "replicas" not in by[("Deployment", "tamgate-worker")]["spec"]
    scalers = [o for o in objs if o["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
               and o["spec"]["scaleTargetRef"]["name"] == "tamgate-worker"]
    assert len(scalers) == 1 and scalers[0]["kind"] == kind, [o["kind"] for o in scalers]
    sc = scalers[0]["spec"]
    if kind == "HorizontalPodAutoscaler":
        m = sc["metrics"][0]
        assert m["type"] == "External" and m["external"]["metric"]["name"] == "tam_jobs_pending"
    else:
        t = sc["triggers"][0]
        assert t["type"] == "prometheus" and "max(tam_jobs_pending" in t["metadata"]["query"]
    # Prometheus may scrape the gateways' admin port from its namespace.
    np = by[("NetworkPolicy", "tamgate-gateway")]["spec"]["ingress"]
    admin = [r for r in np if any(p["port"] == 9080 for p in r["ports"])][0]
    assert any("namespaceSelector" in f for f in admin["from"]), admin
EOF
    }
    check "scale-on-pending: one autoscaler on tam_jobs_pending owns the workers, Prometheus may scrape" pending_ok
    render_ok() {
      "$PY" - "$W/k8s-example.yaml" <<'EOF'
import sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
kinds = {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] in ("ConfigMap", "Secret")
          else o["metadata"]["name"]) for o in objs}
want = {("Deployment", "tamgate-gateway"), ("Deployment", "tamgate-worker"),
        ("StatefulSet", "tamgate-redis"), ("Service", "tamgate"),
        ("HorizontalPodAutoscaler", "tamgate-gateway"), ("PodDisruptionBudget", "tamgate-gateway"),
        ("PodDisruptionBudget", "tamgate-worker"), ("ConfigMap", "tamgate-config"),
        ("Secret", "tamgate-keys"), ("ScaledObject", "tamgate-worker"), ("Secret", "tamgate-kek"),
        ("Secret", "tamgate-worker-seal"), ("Secret", "tamgate-worker-seal-pub")}
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
    secrets_split_ok() {
      "$PY" - "$W/k8s-example.yaml" <<'EOF'
import sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
secret = {o["metadata"]["name"]: o["metadata"]["name"].rsplit("-", 1)[0] for o in objs if o["kind"] == "Secret"}
def files(name):
    """The files of secret volumes each container mounts: {path: generated Secret's base name}."""
    d = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == name][0]
    ps = d["spec"]["template"]["spec"]
    (c,) = ps["containers"]
    out, env = {}, {e["name"]: e.get("value") for e in c.get("env", [])}
    vols = {v["name"]: v for v in ps["volumes"]}
    for m in c["volumeMounts"]:
        v = vols[m["name"]]
        srcs = v.get("projected", {}).get("sources", [])
        if "secret" in v:
            srcs = [{"secret": {"name": v["secret"]["secretName"], "items": v["secret"].get("items")}}]
        for s in srcs:
            if "secret" not in s:
                continue
            assert m.get("readOnly") is True, m
            for it in s["secret"].get("items") or []:
                out[m["mountPath"] + "/" + it["path"]] = secret[s["secret"]["name"]]
    return out, env
g, genv = files("tamgate-gateway")
w, wenv = files("tamgate-worker")
gs, ws = set(g.values()), set(w.values())
assert {"tamgate-kek", "tamgate-worker-seal-pub"} <= gs and "tamgate-worker-seal" not in gs, gs
assert {"tamgate-kek", "tamgate-worker-seal"} <= ws and "tamgate-worker-seal-pub" not in ws, ws
# Each option points at the file its Secret provides.
assert g[genv["TAMGATE_KEK_FILE"]] == "tamgate-kek"
assert g[genv["TAMGATE_WORKER_SEAL_PUB"]] == "tamgate-worker-seal-pub"
assert "TAMGATE_WORKER_SEAL_KEY" not in genv
assert w[wenv["TAMGATE_KEK_FILE"]] == "tamgate-kek"
assert w[wenv["TAMGATE_WORKER_SEAL_KEY"]] == "tamgate-worker-seal"
assert genv["TAMGATE_OPERATOR_TOKEN_FILE"].startswith("/var/lib/tamgate/")
print(f"  gateway mounts {sorted(gs)}, workers {sorted(ws)}")
EOF
    }
    check "overlays/example: KEK in gateways and workers, worker sealing key in workers only, public half in gateways" secrets_split_ok
    check "secrets.example.yaml (placeholders) validates" validate deploy/k8s/secrets.example.yaml
    gen_k8s_ok() {
      bash deploy/gen-secrets.sh --k8s "$W/k8s-secrets" tamgate >"$W/k8s-secrets.yaml" || return 1
      validate "$W/k8s-secrets.yaml" || return 1
      # Same objects and keys as the template.
      "$PY" - deploy/k8s/secrets.example.yaml "$W/k8s-secrets.yaml" <<'EOF'
import sys, yaml
a, b = ([(o["metadata"]["name"], sorted(o["stringData"])) for o in yaml.safe_load_all(open(f)) if o]
        for f in sys.argv[1:])
assert a == b, (a, b)
EOF
    }
    check "gen-secrets.sh --k8s prints the three Secrets of secrets.example.yaml, filled in" gen_k8s_ok
  else
    for f in deploy/k8s/base/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] || { echo "---"; cat "$f"; }
    done >"$W/k8s-base.yaml"
    check "validate the base files (not rendered)" validate "${EXT[@]}" \
      --external ConfigMap/tamgate-config --external ConfigMap/tamgate-env "$W/k8s-base.yaml"
  fi
  # The validator must catch what a typo produces (otherwise a broken check passes silently).
  src=$W/k8s-base.yaml
  mutant_fails() {
    "$PY" - "$src" "$1" "$2" >"$W/mutant.yaml" <<'EOF'
import sys
s, a, b = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
assert a in s, a
print(s.replace(a, b, 1), end="")
EOF
    # The unchanged file must pass: a mutant is rejected for its change, not for something else.
    node deploy/k8s/validate.mjs "${EXT[@]}" --external ConfigMap/tamgate-config \
      --external ConfigMap/tamgate-env "$src" >/dev/null 2>&1 || return 1
    ! node deploy/k8s/validate.mjs "${EXT[@]}" --external ConfigMap/tamgate-config \
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
    src=$W/k8s-example.yaml
    check "validator rejects a mount of a missing Secret key (worker-seal.pen)" \
      mutant_fails "- key: worker-seal.pem" "- key: worker-seal.pen"
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
bash deploy/gen-secrets.sh "$W/sd-ctx/secrets" >/dev/null
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
COPY --chown=10001:10001 secrets/kek.key secrets/worker-seal.pem secrets/worker-seal.pub.pem /etc/tamgate/secrets/
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
    # The sample configuration's secrets (/etc/tamgate/secrets) were loaded, and the operator
    # token was written to /var/lib/tamgate/operator.token, 0600, owned by tamgate.
    if src_has event=no_kek; then
      ! sd_exec journalctl -u tamd --no-pager | grep -E 'event=(no_kek|no_worker_seal_key|kek_failed|worker_seal_key_failed)' ||
        return 1
    fi
    if src_has operator_token_created; then
      for i in $(seq 25); do
        sd_exec test -s /var/lib/tamgate/operator.token && break
        sleep 0.2
      done
      st=$(sd_exec stat -c '%a %U' /var/lib/tamgate/operator.token 2>&1)
      echo "  operator token: /var/lib/tamgate/operator.token $st"
      [ "$st" = "600 tamgate" ] || return 1
    fi
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
  check "single host: systemd runs tamd (procs=2) and 2 tam-worker@ sandboxed as tamgate, secrets loaded; fleet completes; stop exits 0" systemd_host
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
SECRETS=$W/secrets
bash deploy/gen-keys.sh "$KEYS" >/dev/null
bash deploy/gen-secrets.sh "$SECRETS" >/dev/null
TEEP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
export TAMGATE_IMAGE=$IMG TAMGATE_REDIS_IMAGE=$REDIS_IMG TAMGATE_KEYS_DIR=$KEYS TAMGATE_SECRETS_DIR=$SECRETS
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
secrets_mounted_ok() {
  local c d=/etc/tamgate/secrets
  # tamd: the KEK and the public half; never the private worker sealing key.
  podman exec "$C_TAMD" sh -c "test -r $d/kek.key && test -r $d/worker-seal.pub.pem && test ! -e $d/worker-seal.pem" ||
    { echo "  tamd: $(podman exec "$C_TAMD" ls $d 2>&1 | tr '\n' ' ')"; return 1; }
  for c in "$C_W1" "$C_W2"; do
    podman exec "$c" sh -c "test -r $d/kek.key && test -r $d/worker-seal.pem && test ! -e $d/worker-seal.pub.pem" ||
      { echo "  $c: $(podman exec "$c" ls $d 2>&1 | tr '\n' ' ')"; return 1; }
  done
  # Read-only, and the same KEK on both sides.
  ! podman exec "$C_W1" sh -c "echo x >>$d/kek.key" 2>/dev/null || return 1
  [ "$(podman exec "$C_TAMD" cat $d/kek.key)" = "$(podman exec "$C_W1" cat $d/kek.key)" ] || return 1
  if src_has event=no_kek; then
    podman logs "$C_TAMD" >"$W/tamd-start.log" 2>&1
    ! grep -E 'event=(no_kek|no_worker_seal_key|kek_failed|worker_seal_key_failed)' "$W/tamd-start.log" || return 1
  fi
}
check "secrets: tamd has kek.key + worker-seal.pub.pem (not the private key), workers kek.key + worker-seal.pem; read-only; tamd loaded them" \
  secrets_mounted_ok
if src_has operator_token_created; then
  operator_ok() {
    local f=/var/lib/tamgate/operator.token tok i code
    for i in $(seq 50); do
      podman exec "$C_TAMD" test -s "$f" 2>/dev/null && break
      sleep 0.2
    done
    [ "$(podman exec "$C_TAMD" stat -c '%a %u' "$f" 2>&1)" = "600 10001" ] || { podman exec "$C_TAMD" ls -la "$(dirname "$f")"; return 1; }
    tok=$(podman exec "$C_TAMD" cat "$f") || return 1
    # The token works on the admin API, and nothing works without it.
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/v1/tenants")
    [ "$code" = 401 ] || { echo "  GET /v1/tenants without a token: $code"; return 1; }
    code=$(curl -s -o "$W/tenants.json" -m 5 -w '%{http_code}' -H "Authorization: Bearer $tok" \
      "http://127.0.0.1:$ADMIN_PORT/v1/tenants")
    [ "$code" = 200 ] || { echo "  GET /v1/tenants: $code"; cat "$W/tenants.json"; return 1; }
    # A new tenant: its TEEP keys sealed under the KEK, its manifest key sealed to the
    # workers' public key (both only possible when tamd loaded the mounted secrets).
    code=$(curl -s -o "$W/tenant.json" -m 10 -w '%{http_code}' -H "Authorization: Bearer $tok" \
      -H 'Content-Type: application/json' -d '{"id": "ci"}' "http://127.0.0.1:$ADMIN_PORT/v1/tenants")
    [ "$code" = 201 ] || { echo "  POST /v1/tenants: $code"; cat "$W/tenant.json"; return 1; }
    "$PY" - "$W/tenant.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1]))
print(f"  tenant {t['id']}: {len(t['tam_keys'])} TAM keys, {len(t['manifest_keys'])} manifest key(s)")
sys.exit(0 if t["tam_keys"] and t["manifest_keys"] and t.get("token") else 1)
EOF
  }
  check "operator token: written to tamd's data volume (0600), opens the admin API; a tenant created with sealed keys" \
    operator_ok
fi
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
if src_has tam_jobs_pending; then
  # The gauge the worker autoscaling (deploy/k8s/overlays/scale-on-pending) reads: a gauge,
  # and back to 0 once the fleet's jobs are done (workers delete the jobs they finish).
  pending_gauge_ok() {
    local i v
    grep -qx '# TYPE tam_jobs_pending gauge' "$W/metrics.txt" || return 1
    for i in $(seq 25); do
      v=$(curl -s -m 5 "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '$1 == "tam_jobs_pending" {print $2}')
      [ "$v" = 0 ] && break
      sleep 0.2
    done
    echo "  tam_jobs_pending $v"
    [ "$v" = 0 ]
  }
  check "gateway /metrics: tam_jobs_pending is a gauge, 0 once the jobs are done" pending_gauge_ok
fi
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
  timeout 30 podman volume rm -f "${PROJECT}_redis-data" "${PROJECT}_tamd-data" >/dev/null 2>&1
  [ -z "$(podman ps -aq)" ] && ! podman network exists "$NET" && ! podman volume exists "${PROJECT}_redis-data" &&
    ! podman volume exists "${PROJECT}_tamd-data"
}
check "podman-compose down: no container, network or volume left" down_ok
phase "done"
finish
