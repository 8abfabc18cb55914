# shellcheck shell=bash
# Throwaway PostgreSQL clusters for Parapet's tests; sourced by scripts/test and scripts/pg.
#
#   pg_start DIR   initdb DIR/data if needed, start on a free 127.0.0.1 port with the socket in
#                  DIR, log to DIR/log; sets PG_PORT and exports PARAPET_TEST_DATABASE_URL
#   pg_stop DIR    stop the cluster of DIR (the directory is left for the caller to remove)
#   pg_url DIR     the URL of a running cluster of DIR
#
# As root, the cluster runs as the `postgres` user (PostgreSQL refuses to run as root) and DIR is
# handed to it; otherwise it runs as the current user.

PG_VERSION=${PG_VERSION:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}

pg_as_owner() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

pg_free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local p _
    for _ in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

pg_url() {
    local dir=$1
    [[ -f $dir/data/postmaster.pid && -f $dir/port ]] || return 1
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1 || return 1
    echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
}

pg_start() {
    local dir=$1
    if [[ ! -x $PG_BIN/initdb ]]; then
        echo "PostgreSQL $PG_VERSION is not installed ($PG_BIN/initdb missing; apt-get install postgresql-$PG_VERSION)" >&2
        return 1
    fi
    mkdir -p "$dir" || return 1
    chmod 700 "$dir" || return 1
    if [[ $EUID -eq 0 ]]; then
        chown postgres:postgres "$dir" || return 1
    fi
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        if ! pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 \
            --no-instructions >"$dir/initdb.log" 2>&1; then
            cat "$dir/initdb.log" >&2
            echo "initdb failed" >&2
            return 1
        fi
    fi
    local port attempt
    for attempt in 1 2 3; do
        port=$(pg_free_port) || {
            echo "no free port found" >&2
            return 1
        }
        if pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
            start >/dev/null; then
            if ! "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$port" -t 30 >/dev/null; then
                echo "PostgreSQL started but does not answer on port $port" >&2
                return 1
            fi
            echo "$port" >"$dir/port"
            # shellcheck disable=SC2034 # read by the scripts that source this file
            PG_PORT=$port
            export PARAPET_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            return 0
        fi
        echo "pg_ctl start failed on port $port (attempt $attempt); end of $dir/log:" >&2
        tail -n 20 "$dir/log" >&2 || true
    done
    return 1
}

pg_stop() {
    local dir=$1
    [[ -f $dir/data/postmaster.pid ]] || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1
}
