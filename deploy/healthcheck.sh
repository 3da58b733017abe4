#!/bin/bash
# tamgate-healthcheck [PATH]: GET PATH (default /readyz) from tamd's admin listener
# ($TAMGATE_ADMIN_LISTEN, default 127.0.0.1:9080) and exit 0 on "200", 1 otherwise.
# For container healthchecks: the image has no curl, bash's /dev/tcp is enough.
path=${1:-/readyz}
addr=${TAMGATE_ADMIN_LISTEN:-127.0.0.1:9080}
port=${addr##*:}
host=${addr%:*}
case "$host" in
  0.0.0.0 | "" | "[::]") host=127.0.0.1 ;;
esac
host=${host#[}
host=${host%]}
exec timeout 3 bash -c '
  exec 3<>"/dev/tcp/$0/$1" || exit 1
  printf "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" "$2" >&3
  IFS=" " read -r _ code _ <&3
  [ "$code" = 200 ]' "$host" "$port" "$path"
