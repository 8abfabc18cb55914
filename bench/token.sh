#!/usr/bin/env bash
# Token validation benchmark (issue 4): authenticated GET /api/v1/auth/whoami with a bearer API
# token, measured by wrk. Once the token is cached (at most `auth_cache_ms`, 1 s by default) a
# request costs the SHA-256 of the secret, one map lookup, and the handler: no database. The
# target is 100,000 validations/s per core. Reference in the same run: nginx serving a static
# JSON body of the same size (the ceiling of an HTTP server on this machine, wrk sharing the
# cores). Then revocation: the token is revoked (DELETE /api/v1/tokens/{id}) on one replica
# while a client polls another every 20 ms; the time from the revocation's answer to the first 401 must be under 1 s
# (the cache bound) on a second replica of the same database, measured REVOCATIONS times.
#
#   bench/token.sh                              # release build, 3 runs of 15 s, 64 connections
#   RUNS=5 DURATION=30s CONNS=128 bench/token.sh
#   PARAPET_BIN=/path/to/debug/parapet RUNS=1 DURATION=2s REVOCATIONS=2 bench/token.sh   # smoke test
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
REVOCATIONS=${REVOCATIONS:-5}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ -n "${PARAPET_BIN:-}" ]; then
  BIN=$PARAPET_BIN
else
  cargo build --release -q -p parapet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/parapet
fi
WORK=$(mktemp -d /tmp/parapet-token-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
json_field() { python3 -c "import sys,json; print(json.load(sys.stdin)[\"$1\"])"; }

port=$(free_port)
PARAPET_BOOTSTRAP_PASSWORD=bench-root-password-1 PARAPET_PROVIDER_MFA_REQUIRED=false PARAPET_LOG=warn \
  "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$WORK/sqlite" > "$WORK/server.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do grep -q "listening on" "$WORK/server.out" && break; sleep 0.1; done
URL="http://127.0.0.1:$port"
# A second replica on the same database: revocations made on the first must reach it within the
# cache bound (the first forgets the token at once).
port2=$(free_port)
PARAPET_PROVIDER_MFA_REQUIRED=false PARAPET_LOG=warn \
  "$BIN" serve --listen "127.0.0.1:$port2" --data-dir "$WORK/sqlite" > "$WORK/server2.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 300); do grep -q "listening on" "$WORK/server2.out" && break; sleep 0.1; done
URL2="http://127.0.0.1:$port2"

session=$(curl -sf -XPOST "$URL/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-root-password-1"}' | json_field token)
new_token() {
  curl -sf -XPOST "$URL/api/v1/tokens" -H "authorization: Bearer $session" \
    -H 'content-type: application/json' -d "{\"name\":\"bench-$1\",\"scopes\":[\"read\"]}"
}
TOKEN=$(new_token wrk | json_field token)
curl -sf "$URL/api/v1/auth/whoami" -H "authorization: Bearer $TOKEN" > "$WORK/whoami.json"

run() { # name url [token]
  local runs=() r
  for _ in $(seq "$RUNS"); do
    if [ -n "${3:-}" ]; then
      r=$(wrk -t2 -c"$CONNS" -d"$DURATION" -H "authorization: Bearer $3" "$2")
    else
      r=$(wrk -t2 -c"$CONNS" -d"$DURATION" "$2")
    fi
    if echo "$r" | grep -q "Non-2xx"; then echo "ERROR: $1 answered non-2xx: $r" >&2; exit 1; fi
    runs+=("$(echo "$r" | awk '/Requests\/sec/ {printf "%.0f\n", $2}')")
    echo "$1 requests/s: ${runs[-1]}" >&2
  done
  printf '%s\n' "${runs[@]}" | median
}
P=$(run parapet "$URL/api/v1/auth/whoami" "$TOKEN")

NPORT=$(free_port)
mkdir -p "$WORK/www/api/v1/auth" && cp "$WORK/whoami.json" "$WORK/www/api/v1/auth/whoami"
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
N=$(run nginx "http://127.0.0.1:$NPORT/api/v1/auth/whoami")

# Revocation: poll the second replica with a cached token, revoke it on the first, time until
# the second answers 401.
lags=()
for i in $(seq "$REVOCATIONS"); do
  created=$(new_token "rev$i")
  tok=$(echo "$created" | json_field token)
  id=$(echo "$created" | json_field id)
  lag=$(URL=$URL URL2=$URL2 TOK=$tok ID=$id SESSION=$session python3 - <<'PY'
import os, time, threading, urllib.request, urllib.error
url, tok, tid, session = os.environ["URL"], os.environ["TOK"], os.environ["ID"], os.environ["SESSION"]
url2 = os.environ["URL2"]
def status(token):
    req = urllib.request.Request(url2 + "/api/v1/auth/whoami", headers={"authorization": "Bearer " + token})
    try:
        return urllib.request.urlopen(req, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
for _ in range(10):              # warm: the token is in the cache
    assert status(tok) == 200
    time.sleep(0.02)
req = urllib.request.Request(url + "/api/v1/tokens/" + tid, method="DELETE",
                             headers={"authorization": "Bearer " + session})
urllib.request.urlopen(req, timeout=5)
revoked = time.monotonic()
while status(tok) == 200:
    if time.monotonic() - revoked > 5:
        raise SystemExit("ERROR: revoked token still accepted after 5 s")
    time.sleep(0.02)
print("%.3f" % (time.monotonic() - revoked))
PY
)
  lags+=("$lag")
  echo "revocation honoured after ${lag} s" >&2
done
L=$(printf '%s\n' "${lags[@]}" | median)
MAXL=$(printf '%s\n' "${lags[@]}" | sort -n | tail -1)

cores=$(nproc)
echo
echo "machine: $cores cores, $(uname -r); wrk -t2 -c$CONNS -d$DURATION, median of $RUNS runs; SQLite; binary $BIN"
printf '| measure | value | per core |\n|---|---|---|\n'
printf '| Parapet cached token validations/s (GET /api/v1/auth/whoami) | %s | %.0f |\n' "$P" "$(echo "$P / $cores" | bc -l)"
printf '| nginx static body of the same size | %s | %.0f |\n' "$N" "$(echo "$N / $cores" | bc -l)"
printf '| ratio Parapet / nginx | %.2f | |\n' "$(echo "$P / $N" | bc -l)"
printf '| revocation honoured after (s, median / max of %s) | %s / %s | target < 1 |\n' "$REVOCATIONS" "$L" "$MAXL"
