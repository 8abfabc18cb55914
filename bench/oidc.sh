#!/usr/bin/env bash
# OIDC client-credentials benchmark (issue 4 §5): POST /oidc/<tenant>/token with
# grant_type=client_credentials and HTTP Basic client authentication, measured by wrk against a
# release build on SQLite. Each grant goes the whole way: client lookup and secret check, an
# ES256-signed JWT access token, the token row and the grant's audit record in one transaction.
# Reference in the same run: `openssl speed ecdsap256` signatures/s on one core (the ceiling of
# any server signing one ES256 token per grant). Keycloak publishes 120 client-credentials
# grants/s per vCPU; the issue's target is at least 1,000 per core.
#
#   bench/oidc.sh                       # 3 runs of 15 s, 16 connections
#   RUNS=5 DURATION=30s bench/oidc.sh
#   PARAPET_BIN=target/debug/parapet RUNS=1 DURATION=2s bench/oidc.sh   # smoke test, no build
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-16}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -z "${PARAPET_BIN:-}" ]; then
  cargo build --release -q -p parapet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/parapet
else
  BIN=$PARAPET_BIN
fi
WORK=$(mktemp -d /tmp/parapet-oidc-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
field() { python3 -c "import sys,json; print(json.load(sys.stdin)['$1'])"; }

port=$(free_port)
PARAPET_BOOTSTRAP_PASSWORD=bench-root-password-1 PARAPET_PROVIDER_MFA_REQUIRED=false PARAPET_LOG=warn \
  "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$WORK/sqlite" > "$WORK/server.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "listening on" "$WORK/server.out" && break; sleep 0.1; done
URL="http://127.0.0.1:$port"

tok=$(curl -sf -XPOST "$URL/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-root-password-1"}' | field token)
curl -sf -XPOST "$URL/api/v1/tenants" -H "authorization: Bearer $tok" -H 'content-type: application/json' \
  -d '{"name":"bench"}' >/dev/null
client=$(curl -sf -XPOST "$URL/api/v1/tenants/bench/oidc/clients" -H "authorization: Bearer $tok" \
  -H 'content-type: application/json' \
  -d '{"name":"service","grant_types":["client_credentials"]}')
id=$(echo "$client" | field client_id)
secret=$(echo "$client" | field client_secret)
basic=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
# One grant by hand: it must work before it is measured.
curl -sf -XPOST "$URL/oidc/bench/token" -H "authorization: Basic $basic" \
  -d grant_type=client_credentials -d scope=reports:read | field access_token >/dev/null

cat > "$WORK/cc.lua" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=reports:read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $basic"
LUA

runs=()
for _ in $(seq "$RUNS"); do
  r=$(wrk -t2 -c"$CONNS" -d"$DURATION" -s "$WORK/cc.lua" "$URL/oidc/bench/token" | awk '
    /Requests\/sec/ {rps=$2}
    /Non-2xx/ {bad=$NF}
    END {if (bad > 0) {print "ERROR non-2xx responses: " bad > "/dev/stderr"; exit 1}; printf "%.1f\n", rps}')
  runs+=("$r")
  echo "parapet client-credentials grants/s: $r" >&2
done
P=$(printf '%s\n' "${runs[@]}" | median)

# Reference: OpenSSL's ECDSA P-256 signatures/s on one core, same number of runs.
oruns=()
for _ in $(seq "$RUNS"); do
  o=$(openssl speed -seconds 5 ecdsap256 2>/dev/null | awk '/256 bits ecdsa \(nistp256\)/ {print $(NF-1)}')
  oruns+=("$o")
  echo "openssl ecdsap256 signs/s (1 core): $o" >&2
done
O=$(printf '%s\n' "${oruns[@]}" | median)

# The grants were audited: as many oidc.token records as grants (spot check of the last one).
curl -sf "$URL/api/v1/tenants/bench/audit?limit=1" -H "authorization: Bearer $tok" | grep -q '"oidc.token"'

cores=$(nproc)
echo
echo "machine: $cores cores, $(uname -r); wrk -t2 -c$CONNS -d$DURATION, median of $RUNS runs; SQLite"
printf '| measure | value | per core |\n|---|---|---|\n'
printf '| Parapet client-credentials grants/s (whole server, %s cores) | %s (runs %s) | %.1f |\n' "$cores" "$P" "${runs[*]}" "$(echo "$P / $cores" | bc -l)"
printf '| openssl ES256 signatures/s (1 core, ceiling) | %s (runs %s) | %s |\n' "$O" "${oruns[*]}" "$O"
printf '| ratio Parapet per core / openssl signatures | %.3f | |\n' "$(echo "$P / $cores / $O" | bc -l)"
printf '| Keycloak published (per vCPU) | 120 | 120 |\n'
