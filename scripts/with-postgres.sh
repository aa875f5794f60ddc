#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL server:
#
#   bash scripts/with-postgres.sh make test
#   bash scripts/with-postgres.sh .venv/bin/python -m pytest -q tests/test_alerts_run.py
#
# Installs Debian's `postgresql` when no server is installed (root only: apt-get), creates a fresh cluster in
# a temporary directory, starts it on a Unix socket in that directory and on 127.0.0.1 (a free port, trust
# authentication, nothing else listens), exports
#
#   FLANKWATCH_TEST_POSTGRES_URL=postgresql+psycopg://flankwatch@/postgres?host=SOCKETDIR&port=PORT
#
# (a superuser on the maintenance database: the tests CREATE DATABASE from it), runs the command, then stops
# the server and deletes the directory, also when the command fails or is interrupted. Exits with the
# command's status (1 if the server cannot be set up).
#
# As root (CI), the server runs as the system user `flankwatch-pg` (created if missing): initdb refuses root.
set -euo pipefail

readonly PG_USER=flankwatch-pg          # system user that owns the cluster when we run as root
readonly DB_SUPERUSER=flankwatch        # the cluster's superuser (initdb -U)
readonly START_TIMEOUT=30               # seconds for the server to accept connections

say() { echo "with-postgres: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ $# -gt 0 ] || { echo "usage: bash scripts/with-postgres.sh COMMAND [ARGS...]" >&2; exit 2; }

# The newest installed server: /usr/lib/postgresql/<major>/bin (Debian's layout).
find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5,5 -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if ! bindir=$(find_bindir); then
    [ "$(id -u)" -eq 0 ] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin and not root: install it with
    sudo apt-get update && sudo apt-get install -y postgresql"
    say "no PostgreSQL server found: installing Debian's postgresql (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed"
    # postgresql-common first, told not to create (and start) the default cluster on port 5432: we only
    # need the binaries.
    apt-get install -y -qq postgresql-common >&2 || die "apt-get install postgresql-common failed"
    if [ -f /etc/postgresql-common/createcluster.conf ]; then
        sed -i 's/^#*[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    apt-get install -y -qq postgresql >&2 || die "apt-get install postgresql failed"
    bindir=$(find_bindir) || die "postgresql was installed but no server is in /usr/lib/postgresql/*/bin"
fi

# Run server programs as PG_USER when root, as ourselves otherwise.
if [ "$(id -u)" -eq 0 ]; then
    if ! id -u "$PG_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            "$PG_USER" || die "cannot create the system user $PG_USER"
    fi
    # from /: the caller's directory (a clone under /root, say) may be closed to that user
    as_server() { (cd / && runuser -u "$PG_USER" -- "$@"); }
else
    as_server() { "$@"; }
fi

# A free TCP port on 127.0.0.1 (the kernel picks it; python3 is there wherever the project builds).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') \
    || die "cannot find a free port"

# In /tmp, not $TMPDIR: a Unix socket path must stay under 108 bytes.
workdir=$(mktemp -d /tmp/flankwatch-pg.XXXXXX)
datadir="$workdir/data"
logfile="$workdir/server.log"

# Runs on every exit: after the command, on a failed start, on Ctrl-C. (A TERM sent to this script alone
# takes effect once the command has ended: bash waits for its foreground child.)
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -f "$datadir/postmaster.pid" ]; then
        if ! as_server "$bindir/pg_ctl" -D "$datadir" -m fast -w -t 20 stop >/dev/null 2>&1; then
            say "server did not stop in 20 s: stopping it immediately"
            as_server "$bindir/pg_ctl" -D "$datadir" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        fi
    fi
    rm -rf "$workdir"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -ne 0 ] || chown "$PG_USER:" "$workdir"
chmod 700 "$workdir"

# Throwaway cluster: no fsync (nothing here must survive a crash), C.UTF-8 (byte order, like SQLite's).
if ! as_server "$bindir/initdb" -D "$datadir" -U "$DB_SUPERUSER" -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
        >"$workdir/initdb.log" 2>&1; then
    cat "$workdir/initdb.log" >&2
    die "initdb failed (output above)"
fi

if ! as_server "$bindir/pg_ctl" -D "$datadir" -l "$logfile" -w -t "$START_TIMEOUT" \
        -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$workdir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null 2>&1; then
    tail -n 30 "$logfile" >&2 2>/dev/null || true
    die "PostgreSQL ($bindir) did not start or did not accept connections within $START_TIMEOUT s on port $port (server log above)"
fi
"$bindir/pg_isready" -q -h "$workdir" -p "$port" -U "$DB_SUPERUSER" -d postgres \
    || die "PostgreSQL started but does not answer on $workdir:$port"

export FLANKWATCH_TEST_POSTGRES_URL="postgresql+psycopg://$DB_SUPERUSER@/postgres?host=$workdir&port=$port"
say "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on $workdir (socket) and 127.0.0.1:$port"
say "FLANKWATCH_TEST_POSTGRES_URL=$FLANKWATCH_TEST_POSTGRES_URL"

set +e
"$@"
status=$?
set -e
exit "$status"
