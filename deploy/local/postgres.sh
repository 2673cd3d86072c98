#!/usr/bin/env bash
# A PostgreSQL server for development and tests: Debian's postgresql, in a temporary data
# directory, on a free loopback port. Started by root, the server runs as the postgres user.
#
#   deploy/local/postgres.sh start [DIR]              initdb, start; prints the connection URL
#   deploy/local/postgres.sh url [DIR]                the URL of the running server
#   deploy/local/postgres.sh restart [DIR] [MODE]     stop (-m fast, or MODE: immediate = a crash) and start
#   deploy/local/postgres.sh stop [DIR]               stop the server and remove its directory
#
# The URL names the database `saga` and the superuser `postgres` with a password made at initdb
# (tests terminate backends and create databases). TCP connections need the password
# (scram-sha-256); the server listens on 127.0.0.1 only.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
action="${1:-}"
default_dir="${TMPDIR:-/tmp}/saga-postgres-$(printf %s "$root" | cksum | cut -d' ' -f1)"
dir="${2:-$default_dir}"

bindir() {
    local found
    found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$found" ] || [ ! -x "$found/initdb" ]; then
        echo "installing Debian's postgresql" >&2
        export DEBIAN_FRONTEND=noninteractive
        # The package's own cluster is not used: keep it from starting.
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
            chmod +x /usr/sbin/policy-rc.d
            trap 'rm -f /usr/sbin/policy-rc.d' RETURN
        fi
        apt-get install -y -q postgresql >&2 || { apt-get update -q >&2 && apt-get install -y -q postgresql >&2; }
        found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    fi
    echo "$found"
}

# Runs a command as the server's owner: the postgres user when we are root.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

url() {
    echo "postgres://postgres:$(cat "$dir/password")@127.0.0.1:$(cat "$dir/port")/saga"
}

start_server() {
    local bin="$1"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $(cat "$dir/port") -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >&2 || {
        tail -20 "$dir/server.log" >&2
        exit 1
    }
}

case "$action" in
start)
    bin=$(bindir)
    if [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        url
        exit 0
    fi
    mkdir -p "$dir"
    chmod 700 "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        python3 -c 'import secrets; print(secrets.token_hex(16))' >"$dir/password"
        chmod 600 "$dir/password"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/password"
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/password" --auth-local=trust \
            --auth-host=scram-sha-256 --encoding=UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            exit 1
        }
    fi
    free_port >"$dir/port"
    start_server "$bin"
    as_owner "$bin/psql" -h "$dir" -p "$(cat "$dir/port")" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -c "SELECT 1 FROM pg_database WHERE datname = 'saga'" -t | grep -q 1 ||
        as_owner "$bin/createdb" -h "$dir" -p "$(cat "$dir/port")" -U postgres saga
    url
    ;;
url)
    url
    ;;
restart)
    bin=$(bindir)
    mode="${3:-fast}"
    as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w stop >&2
    start_server "$bin"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        bin=$(bindir)
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|url|restart|stop [DIR] [MODE]" >&2
    exit 64
    ;;
esac
