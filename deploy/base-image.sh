#!/usr/bin/env bash
# Builds a Debian 12 (bookworm) base image with debootstrap, for hosts that cannot pull
# from an image registry. Elsewhere, use a registry's debian:bookworm-slim instead (the
# Containerfile's BASE build argument; see deploy/README.md).
#
# Usage (as root): bash deploy/base-image.sh [IMAGE]        (default localhost/debian-bookworm:base)
# Environment:
#   TAMGATE_BASE_CACHE  rootfs tarball reused when present, written otherwise
#                       (default /var/tmp/tamgate-ci-base.tar; "" = no cache)
#   TAMGATE_BASE_REFRESH=1  ignore the cache and debootstrap again
#   DEBIAN_MIRROR       default: the mirror apt already uses
# Podman settings come from the environment (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF).
set -euo pipefail
image=${1:-localhost/debian-bookworm:base}
cache=${TAMGATE_BASE_CACHE-/var/tmp/tamgate-ci-base.tar}
# Bumped whenever the recipe below changes: an older cached rootfs is then rebuilt.
recipe=2

if podman image exists "$image"; then
  echo "base-image: $image present"
  exit 0
fi
if [ -n "$cache" ] && [ -s "$cache" ] && [ "$(cat "$cache.recipe" 2>/dev/null)" = "$recipe" ] &&
  [ "${TAMGATE_BASE_REFRESH:-0}" != 1 ]; then
  podman import -q --change 'CMD ["/bin/bash"]' "$cache" "$image" >/dev/null
  echo "base-image: $image imported from $cache"
  exit 0
fi

command -v debootstrap >/dev/null || { echo "base-image: debootstrap is not installed" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-}
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '$1=="URIs:"{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

work=$(mktemp -d "${TMPDIR:-/tmp}/tamgate-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "base-image: debootstrap bookworm from $mirror (about 35 s)"
if ! debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
  tail -n 20 "$work/debootstrap.log" >&2
  exit 1
fi
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
# Updates and security fixes, as in a registry's debian:bookworm image: reuse this host's
# apt sources when it is a bookworm host (its mirror is known to work from here).
if grep -qs bookworm /etc/apt/sources.list.d/debian.sources; then
  rm -f "$work/rootfs/etc/apt/sources.list"
  cp /etc/apt/sources.list.d/debian.sources "$work/rootfs/etc/apt/sources.list.d/debian.sources"
fi
# Like a registry's slim image: no translations, no docs or man pages (copyrights stay).
printf 'Acquire::Languages "none";\n' >"$work/rootfs/etc/apt/apt.conf.d/docker-no-languages"
cat >"$work/rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
podman import -q --change 'CMD ["/bin/bash"]' "$work/rootfs.tar" "$image" >/dev/null
if [ -n "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  mv "$work/rootfs.tar" "$cache.tmp.$$" && mv "$cache.tmp.$$" "$cache"
  echo "$recipe" >"$cache.recipe"
  echo "base-image: $image built; rootfs cached in $cache"
else
  echo "base-image: $image built"
fi
