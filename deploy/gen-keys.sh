#!/usr/bin/env bash
# Writes a tenant's key files for a first deployment or a trial (openssl only):
#   tam.pem            the TAM's P-256 signing key (private: gateways and workers)
#   tam.pub.pem        its public key (what devices trust)
#   attester.pem       a P-256 attester key for a simulated fleet (tam-agent --attester-key)
#   attester.pub.pem   its public key (the tenant's attester-key)
# Real deployments use their own attester / Verifier keys and TC signer keys.
# Usage: bash deploy/gen-keys.sh DIR [UID]
# UID (default 10001, the containers' user) owns the files when run as root, so that the
# read-only mount in the containers can read them. Existing files are kept.
set -euo pipefail
dir=${1:?usage: gen-keys.sh DIR [UID]}
owner=${2:-10001}
command -v openssl >/dev/null || { echo "gen-keys.sh: openssl is required" >&2; exit 1; }
mkdir -p "$dir"
umask 077
for name in tam attester; do
  if [ ! -s "$dir/$name.pem" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.pem" 2>/dev/null
  fi
  openssl pkey -in "$dir/$name.pem" -pubout -out "$dir/$name.pub.pem" 2>/dev/null
done
chmod 0400 "$dir/tam.pem" "$dir/attester.pem"
chmod 0444 "$dir/tam.pub.pem" "$dir/attester.pub.pem"
chmod 0755 "$dir"
if [ "$(id -u)" = 0 ]; then
  chown "$owner:$owner" "$dir"/tam.pem "$dir"/tam.pub.pem "$dir"/attester.pem "$dir"/attester.pub.pem
fi
echo "gen-keys: $dir/{tam,attester}{,.pub}.pem"
