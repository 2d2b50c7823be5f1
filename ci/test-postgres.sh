#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests, on loopback, with TLS: started if it is not
# running, and left running for the next test process (each test makes a database of its own
# in it). Prints the cluster's URL, then the file of the root its TLS certificate (for
# 127.0.0.1) chains to, both made with the cluster. Debian's server refuses to run as root, so as root the
# cluster runs as the `postgres` user.
#   TRUSTD_TEST_PG_DIR   where the cluster lives (default /tmp/trustd-test-postgres)
#   TRUSTD_TEST_PG_PORT  its TCP port on 127.0.0.1 (default 55432)
# `ci/test-postgres.sh standby NAME PORT` also starts a hot standby of the cluster (streaming
# replication from a fresh base backup) on PORT and prints its URL; `ci/test-postgres.sh
# drop-standby NAME` stops and removes it.
set -euo pipefail
dir=${TRUSTD_TEST_PG_DIR:-/tmp/trustd-test-postgres}
port=${TRUSTD_TEST_PG_PORT:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "test-postgres: PostgreSQL's server is not installed (ci/setup.sh installs it)" >&2
  exit 1
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
exec 9>"$dir.lock"
flock 9
# Whether it answers on its port, not whether its pid file names a live process: after a reboot
# or a killed session that pid may belong to another process.
if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 5; then
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
  fi
  if [ ! -f "$dir/root.crt" ]; then
    # A root for the test cluster alone, and the server's certificate for 127.0.0.1 under it;
    # the root's key is not kept.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=trustd test PostgreSQL root" -keyout "$dir/root.key" -out "$dir/root.crt" 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
      -keyout "$dir/data/server.key" -out "$dir/server.csr" 2>/dev/null
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/root.crt" -CAkey "$dir/root.key" -days 3650 \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n') \
      -out "$dir/data/server.crt" 2>/dev/null
    rm -f "$dir/root.key" "$dir/server.csr"
    chmod 600 "$dir/data/server.key"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/data/server.key" "$dir/data/server.crt"
  fi
  # Nothing answers, and starts are serialised by the lock above: a pid file or socket lock
  # left is stale.
  rm -f "$dir/data/postmaster.pid" "$dir/.s.PGSQL.$port" "$dir/.s.PGSQL.$port.lock"
  # fsync stays on: the tests and benchmarks see the durability a deployment has. WAL is kept
  # (wal_keep_size) so that a standby made by pg_basebackup still finds the segments it starts
  # streaming from: the tests running beside it write enough for a checkpoint to remove them
  # between the backup's end and the standby's first connection.
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=300 -c ssl=on -c wal_keep_size=512MB" start >/dev/null 9>&- \
    || { tail -20 "$dir/server.log" >&2; exit 1; }
fi
case "${1:-}" in
  standby)
    name=$2 standby_port=$3
    sdir="$dir/standbys/$name"
    as_owner mkdir -p "$dir/standbys"
    as_owner "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -D "$sdir" -R -X stream -c fast >/dev/null 2>"$dir/standbys/$name.log" \
      || { cat "$dir/standbys/$name.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$sdir" -l "$sdir/server.log" -w -t 60 \
      -o "-p $standby_port -k $dir/standbys -c listen_addresses=127.0.0.1 -c hot_standby=on -c max_connections=300 -c ssl=on" start >/dev/null 9>&- \
      || { tail -20 "$sdir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$standby_port"
    ;;
  drop-standby)
    sdir="$dir/standbys/$2"
    as_owner "$bin/pg_ctl" -D "$sdir" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$sdir" "$dir/standbys/$2.log"
    ;;
  *)
    echo "postgres://postgres@127.0.0.1:$port"
    echo "$dir/root.crt"
    ;;
esac
