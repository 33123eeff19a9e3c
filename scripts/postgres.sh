#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the test suite and print its URL.
# If no server is installed, installs Debian's `postgresql` package first (as root, or with
# sudo). Running it again while the server is up just prints the URL.
set -euo pipefail

port="${COPLAY_PG_PORT:-54329}"
dir="${COPLAY_PG_DIR:-/tmp/coplay-postgres-$port}"

server_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
bin="$(server_bin || true)"
if [ -z "$bin" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing PostgreSQL (apt-get install postgresql) ..." >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >&2
  bin="$(server_bin)"
fi

# initdb and the server refuse to run as root: as root, run them as the postgres user.
as_server() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if ! as_server "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_server "$bin/initdb" -D "$dir" -U coplay --auth=trust >/dev/null
  as_server "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c fsync=off" start >/dev/null
fi
echo "postgresql+psycopg://coplay@127.0.0.1:$port/postgres"
