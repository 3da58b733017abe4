#!/usr/bin/env bash
# Installs everything tamgate needs to build, test and run on Debian 12 (as root).
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
packages=(
  build-essential meson ninja-build pkg-config
  libuv1-dev libwolfssl-dev libcbor-dev libhiredis-dev node-llhttp libjansson-dev libinih-dev
  libcriterion-dev redis-server redis-tools
  clang libclang-rt-14-dev
  openssl curl wrk
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "install-deps: all ${#packages[@]} packages present"
