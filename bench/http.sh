#!/usr/bin/env bash
# HTTP benchmark of the foundation (issue 2): authenticated GET /api/v1/tenants/{tenant}/users
# with a bearer API token, measured by wrk against a release build, on SQLite and on PostgreSQL.
# Reference on the same machine in the same run: nginx serving the same JSON body as a static
# file (the ceiling of an HTTP server on this machine, with wrk sharing the cores).
#
#   bench/http.sh                  # 3 runs of 15 s per target, 64 connections, 2 wrk threads
#   RUNS=5 DURATION=30s CONNS=128 bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
PGBIN=/usr/lib/postgresql/15/bin

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
[ -x "$PGBIN/initdb" ] || need+=(postgresql-15)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release -q -p parapet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/parapet
WORK=$(mktemp -d /tmp/parapet-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -d "$WORK/pg" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wrk → "requests_per_s p99_ms"
measure() {
  local url=$1 token=${2:-}
  local args=(-t2 -c"$CONNS" -d"$DURATION" --latency)
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  wrk "${args[@]}" "$url" | awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    /Non-2xx/ {bad=$NF}
    END {if (bad > 0) {print "ERROR non-2xx responses: " bad > "/dev/stderr"; exit 1}; printf "%.0f %.2f\n", rps, p99}'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

start_server() { # $1: --data-dir DIR | --database-url URL
  local port; port=$(free_port)
  PARAPET_BOOTSTRAP_PASSWORD=bench-root-password-1 PARAPET_PROVIDER_MFA_REQUIRED=false PARAPET_LOG=warn \
    "$BIN" serve --listen "127.0.0.1:$port" "$@" > "$WORK/server.out" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$WORK/server.out" && break; sleep 0.1; done
  URL="http://127.0.0.1:$port"
}

prepare() { # creates tenant bench with 20 users and prints a read-only API token
  local tok
  tok=$(curl -sf -XPOST "$URL/api/v1/auth/login" -H 'content-type: application/json' \
    -d '{"username":"admin","password":"bench-root-password-1"}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])')
  curl -sf -XPOST "$URL/api/v1/tenants" -H "authorization: Bearer $tok" -H 'content-type: application/json' -d '{"name":"bench"}' >/dev/null
  for i in $(seq 1 20); do
    curl -sf -XPOST "$URL/api/v1/tenants/bench/users" -H "authorization: Bearer $tok" -H 'content-type: application/json' \
      -d "{\"username\":\"user$i\",\"password\":\"bench-user-password-$i\",\"role\":\"tenant-member\"}" >/dev/null
  done
  curl -sf -XPOST "$URL/api/v1/tokens" -H "authorization: Bearer $tok" -H 'content-type: application/json' \
    -d '{"name":"bench","scopes":["read"]}' | python3 -c 'import sys,json; print(json.load(sys.stdin)["token"])'
}

declare -A RPS P99
run_target() { # name url token
  local name=$1 url=$2 token=${3:-} r=() p=()
  for _ in $(seq "$RUNS"); do
    read -r rps p99 < <(measure "$url" "$token")
    r+=("$rps"); p+=("$p99")
  done
  RPS[$name]=$(printf '%s\n' "${r[@]}" | median)
  P99[$name]=$(printf '%s\n' "${p[@]}" | median)
  echo "$name: runs ${r[*]} req/s; p99 ${p[*]} ms" >&2
}

# SQLite
start_server --data-dir "$WORK/sqlite"
TOKEN=$(prepare)
curl -sf "$URL/api/v1/tenants/bench/users" -H "authorization: Bearer $TOKEN" > "$WORK/users.json"
run_target sqlite "$URL/api/v1/tenants/bench/users" "$TOKEN"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# PostgreSQL: a throwaway cluster
mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
PGPORT=$(free_port)
runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg" -A trust -U postgres >/dev/null
runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
  -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
start_server --database-url "postgres://postgres@127.0.0.1:$PGPORT/postgres"
TOKEN=$(prepare)
run_target postgres "$URL/api/v1/tenants/bench/users" "$TOKEN"
kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true

# Reference: nginx serving the same body.
NPORT=$(free_port)
mkdir -p "$WORK/www/api/v1/tenants/bench" && cp "$WORK/users.json" "$WORK/www/api/v1/tenants/bench/users"
cat > "$WORK/nginx.conf" <<CONF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  server { listen 127.0.0.1:$NPORT; root $WORK/www; }
}
CONF
nginx -c "$WORK/nginx.conf"
sleep 0.3
run_target nginx "http://127.0.0.1:$NPORT/api/v1/tenants/bench/users"

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); wrk -t2 -c$CONNS -d$DURATION, median of $RUNS runs; body $(wc -c < "$WORK/users.json") bytes (20 users)"
printf '| target | requests/s | p99 (ms) | ratio to nginx |\n|---|---|---|---|\n'
for t in sqlite postgres nginx; do
  printf '| %s | %s | %s | %.2f |\n' "$t" "${RPS[$t]}" "${P99[$t]}" "$(echo "${RPS[$t]} ${RPS[nginx]}" | awk '{print $1/$2}')"
done
