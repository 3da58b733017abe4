#!/usr/bin/env bash
# Writes the deployment secrets that gateways (tamd) and workers (tam-worker) share when they
# do not share a data directory (containers, Kubernetes, several hosts), with openssl only:
#   kek.key              the key-encryption key (32 random bytes as 64 hex digits) that seals
#                        the tenants' TEEP signing keys in Redis: gateways AND workers
#                        (kek-file / TAMGATE_KEK_FILE)
#   worker-seal.pem      the workers' private P-256 sealing key (tenants' SUIT manifest keys
#                        are sealed to it): workers ONLY (worker-seal-key / TAMGATE_WORKER_SEAL_KEY)
#   worker-seal.pub.pem  its public half: gateways (worker-seal-pub / TAMGATE_WORKER_SEAL_PUB)
# The operator token is not made here: tamd writes a new one to operator-token-file
# (TAMGATE_OPERATOR_TOKEN_FILE) once per deployment.
#
# Existing files are kept (a new KEK would make every tenant key stored in Redis unreadable:
# back kek.key and worker-seal.pem up with the Redis data); the public half is re-derived.
#
# Usage:
#   bash deploy/gen-secrets.sh DIR [OWNER]        files in DIR; as root they belong to OWNER
#                                                 (default 10001, the containers' user; a
#                                                 name such as tamgate works too)
#   bash deploy/gen-secrets.sh --k8s DIR [NAMESPACE]
#                                                 the same files, then prints the Kubernetes
#                                                 Secrets tamgate-kek, tamgate-worker-seal and
#                                                 tamgate-worker-seal-pub filled from them
#                                                 (deploy/k8s/secrets.example.yaml is the
#                                                 template with placeholders):
#       bash deploy/gen-secrets.sh --k8s ~/tamgate-secrets tamgate | kubectl apply -f -
set -euo pipefail
k8s=0
if [ "${1:-}" = --k8s ]; then
  k8s=1
  shift
fi
dir=${1:?usage: gen-secrets.sh [--k8s] DIR [OWNER | NAMESPACE]}
owner=10001
namespace=""
if [ "$k8s" = 1 ]; then
  namespace=${2:-}
else
  owner=${2:-10001}
fi
command -v openssl >/dev/null || { echo "gen-secrets.sh: openssl is required" >&2; exit 1; }
mkdir -p "$dir"
umask 077
if [ ! -s "$dir/kek.key" ]; then
  # Written under a temporary name first: a partial KEK must never be taken for a real one.
  openssl rand -hex 32 >"$dir/kek.key.tmp.$$"
  mv "$dir/kek.key.tmp.$$" "$dir/kek.key"
fi
if ! grep -Eqx '[0-9a-fA-F]{64}' "$dir/kek.key" && [ "$(wc -c <"$dir/kek.key")" != 32 ]; then
  echo "gen-secrets.sh: $dir/kek.key is neither 64 hex digits nor 32 bytes" >&2
  exit 1
fi
if [ ! -s "$dir/worker-seal.pem" ]; then
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/worker-seal.pem.tmp.$$" 2>/dev/null
  mv "$dir/worker-seal.pem.tmp.$$" "$dir/worker-seal.pem"
fi
openssl pkey -in "$dir/worker-seal.pem" -pubout -out "$dir/worker-seal.pub.pem" 2>/dev/null
chmod 0400 "$dir/kek.key" "$dir/worker-seal.pem"
chmod 0444 "$dir/worker-seal.pub.pem"
chmod 0755 "$dir"
if [ "$(id -u)" = 0 ] && [ "$k8s" = 0 ]; then
  chown "$owner:$owner" "$dir/kek.key" "$dir/worker-seal.pem" "$dir/worker-seal.pub.pem"
fi
if [ "$k8s" = 0 ]; then
  echo "gen-secrets: $dir/{kek.key,worker-seal.pem,worker-seal.pub.pem}"
  exit 0
fi

grep -Eqx '[0-9a-fA-F]{64}' "$dir/kek.key" ||
  { echo "gen-secrets.sh: --k8s needs a hex kek.key (64 hex digits)" >&2; exit 1; }
# One Secret per secret, so that RBAC and mounts can tell them apart: workers mount
# tamgate-kek and tamgate-worker-seal, gateways tamgate-kek and tamgate-worker-seal-pub.
secret() { # NAME KEY FILE
  echo "---"
  echo "apiVersion: v1"
  echo "kind: Secret"
  echo "metadata:"
  echo "  name: $1"
  [ -z "$namespace" ] || echo "  namespace: $namespace"
  echo "  labels:"
  echo "    app.kubernetes.io/name: tamgate"
  echo "    app.kubernetes.io/part-of: tamgate"
  echo "type: Opaque"
  echo "stringData:"
  echo "  $2: |"
  sed 's/^/    /' "$3"
}
secret tamgate-kek kek.key "$dir/kek.key"
secret tamgate-worker-seal worker-seal.pem "$dir/worker-seal.pem"
secret tamgate-worker-seal-pub worker-seal.pub.pem "$dir/worker-seal.pub.pem"
