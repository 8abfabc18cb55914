#!/usr/bin/env bash
# Key service benchmark (issue 5): encrypt and decrypt requests/s over HTTP with 1 KiB payloads
# (audit record included in every request), batch encrypt operations/s, with one key and with
# KEYS keys (requests spread at random over all of them), on SQLite, against a release build.
# Reference in the same run: GET /healthz of the same server (the ceiling of the HTTP stack on
# this machine with wrk sharing the cores). Vault's transit engine is not packaged for Debian
# and cannot be installed here, so no Vault figure is measured.
#
#   bench/kms.sh                       # 3 runs of 10 s, 64 connections, 1000 keys
#   RUNS=5 DURATION=30s KEYS=10000 bench/kms.sh
#   KEYS=1000000 bench/kms.sh          # latency at a million keys (issue 5: independent of it)
#   BATCH=1000 bench/kms.sh            # batches of 1000 items (the most a request takes)
#   WARM=0 bench/kms.sh                # skip the warm-up pass over every key
#   KMS_BENCH_DIR=/var/tmp/kms-bench KEYS=1000000 bench/kms.sh
#                                      # keep the database and root key there, so a second run
#                                      # reuses the million keys instead of creating them again
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
KEYS=${KEYS:-1000}
BATCH=${BATCH:-32}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# PARAPET_BIN=path/to/parapet skips the release build (to check the script on a debug build).
if [ -n "${PARAPET_BIN:-}" ]; then
  BIN=$PARAPET_BIN
else
  cargo build --release -q -p parapet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/parapet
fi
WORK=$(mktemp -d /tmp/parapet-kms-bench.XXXXXX)
DATA=${KMS_BENCH_DIR:-$WORK}
mkdir -p "$DATA"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PARAPET_BOOTSTRAP_PASSWORD=bench-root-password-1 PARAPET_PROVIDER_MFA_REQUIRED=false PARAPET_LOG=error \
  "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$DATA/data" --kms-key-file "$DATA/root.key" \
  > "$WORK/server.out" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
for _ in $(seq 200); do grep -q "listening on" "$WORK/server.out" && break; sleep 0.1; done
URL="http://127.0.0.1:$port"
TOKEN=$(curl -sf "$URL/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"admin","password":"bench-root-password-1"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
api() { curl -sf "$URL$1" -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$2"; }

PLAIN=$(head -c 1024 /dev/urandom | base64 -w0)
api /api/v1/kms/keys '{"name":"k0"}' >/dev/null || true   # made by an earlier run on $DATA
CT=$(api /api/v1/kms/keys/k0/encrypt "{\"plaintext\":\"$PLAIN\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ciphertext"])')
if curl -sf "$URL/api/v1/kms/keys/k$KEYS" -H "authorization: Bearer $TOKEN" >/dev/null; then
  echo "the $KEYS keys exist in $DATA already" >&2
else
  echo "creating $KEYS keys…" >&2
  python3 bench/kms_create_keys.py "$URL" "$TOKEN" "$KEYS" 8
fi

ITEMS=$(python3 -c "import json; print(json.dumps({'items':[{'plaintext':'$PLAIN'}]*$BATCH}))")
lua() { # $1 file, $2 path ('' = random key), $3 body
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = [[$3]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local keys = $KEYS
request = function()
  local path = "$2"
  if path == "" then path = "/api/v1/kms/keys/k" .. math.random(1, keys) .. "/encrypt" end
  return wrk.format(nil, path)
end
LUA
}
lua "$WORK/enc1.lua" /api/v1/kms/keys/k0/encrypt "{\"plaintext\":\"$PLAIN\"}"
lua "$WORK/encN.lua" "" "{\"plaintext\":\"$PLAIN\"}"
lua "$WORK/dec.lua" /api/v1/kms/decrypt "{\"ciphertext\":\"$CT\"}"
lua "$WORK/batch.lua" /api/v1/kms/keys/k0/encrypt-batch "$ITEMS"
DITEMS=$(python3 -c "import json; print(json.dumps({'items':[{'ciphertext':'$CT'}]*$BATCH}))")
lua "$WORK/dbatch.lua" /api/v1/kms/decrypt-batch "$DITEMS"

measure() { # $1 lua or '' (GET /healthz) → "rps p99_ms"
  local args=(-t2 -c"$CONNS" -d"$DURATION" --latency)
  [ -n "$1" ] && args+=(-s "$1")
  wrk "${args[@]}" "$URL${2:-/healthz}" | awk '
    /Requests\/sec/ {rps=$2}
    /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p99=v}
    /Non-2xx/ {bad=$NF}
    END {if (bad > 0) {print "ERROR non-2xx responses: " bad > "/dev/stderr"; exit 1}; printf "%.0f %.2f\n", rps, p99}'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "machine: $(nproc) cores, $(uname -r); wrk -t2 -c$CONNS -d$DURATION, median of $RUNS runs; 1 KiB payloads; $KEYS keys; batches of $BATCH"
printf '%-34s %12s %10s %s\n' target "req/s" "p99 ms" runs
# Warm-up: about every key used once (two wrk threads, each through its half of k1..kN in
# order, in chunks of 10 s that continue where the previous one stopped), so "KEYS keys at
# random" measures the steady state of a service whose keys are all in use. The rate of this
# first pass, nearly every key a cache miss read from the database, is printed too.
HALF=$(( (KEYS + 1) / 2 ))
cat > "$WORK/warm.lua" <<LUA
wrk.method = "POST"
wrk.body = [[{"plaintext":"$PLAIN"}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $TOKEN"
local n = 0
local threads = 0
function setup(thread) thread:set("tid", threads); threads = threads + 1 end
function init(args) start = tonumber(args[1]) end
function request()
  local i = tid * $HALF + (start + n) % $HALF + 1
  n = n + 1
  return wrk.format(nil, "/api/v1/kms/keys/k" .. i .. "/encrypt")
end
function done(summary) io.write("DONE " .. summary.requests .. "\n") end
LUA
if [ "${WARM:-1}" = 1 ] && [ "$KEYS" -gt 1 ]; then
  t0=$(date +%s.%N); start=0; total=0
  while [ "$start" -lt "$HALF" ]; do
    d=$(wrk -t2 -c"$CONNS" -d10s -s "$WORK/warm.lua" "$URL" -- "$start" | awk '/^DONE/ {print $2}')
    [ -n "$d" ] && [ "$d" -gt 0 ] || { echo "warm-up made no requests" >&2; exit 1; }
    total=$((total + d)); start=$((start + d / 2))
  done
  t1=$(date +%s.%N)
  echo "warm-up, about every key once (cache misses): $total requests in $(python3 -c "print(f'{$t1-$t0:.1f} s = {$total/($t1-$t0):.0f} req/s')")"
fi
for t in healthz enc1 encN dec batch dbatch; do
  rs=(); ps=()
  for _ in $(seq "$RUNS"); do
    case $t in
      healthz) r=$(measure "") ;;
      *) r=$(measure "$WORK/$t.lua") ;;
    esac
    rs+=("${r% *}"); ps+=("${r#* }")
  done
  m=$(printf '%s\n' "${rs[@]}" | median); p=$(printf '%s\n' "${ps[@]}" | median)
  case $t in
    healthz) name="GET /healthz (ceiling)" ;;
    enc1) name="encrypt, 1 key" ;;
    encN) name="encrypt, $KEYS keys at random" ;;
    dec) name="decrypt, 1 key" ;;
    batch) name="encrypt-batch ($BATCH/request)" ;;
    dbatch) name="decrypt-batch ($BATCH/request)" ;;
  esac
  extra=""
  case $t in batch|dbatch) extra=" = $(python3 -c "print(int($m*$BATCH))") operations/s" ;; esac
  printf '%-34s %12s %10s %s%s\n' "$name" "$m" "$p" "${rs[*]}" "$extra"
done
# The server's memory after the runs (the key cache holds every key used, up to --kms-cache-keys).
awk '/VmRSS|VmHWM/ {printf "server %s %.0f MiB\n", $1, $2/1024}' "/proc/$SERVER/status"
