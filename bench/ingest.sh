#!/usr/bin/env bash
# End-to-end ingestion benchmark (issue 6): events/s from `parapet ingest` over HTTP into a
# `parapet serve` on SQLite — parse, normalize, attribute, evaluate every provider rule, store
# events and alerts in one transaction per batch — with every SigmaHQ rule uploaded as a
# provider rule (../shared/data/sigma/rules*). Target: 50,000 events/s on the 2-core machine.
#
# Reference in the same run: the same events file through `parapet detect test` with the same
# rules (detection alone, no HTTP, no storage), i.e. what the pipeline costs on top of detection.
# The events are bench/detect_events.py's (Windows events in the evtx_dump shape built from the
# SigmaHQ regression corpus, 5% real, 95% benign).
#
#   bench/ingest.sh                                   # release build, 200,000 events, 3 runs
#   RUNS=5 EVENTS=1000000 CLIENTS=4 bench/ingest.sh
#   PARAPET_BIN=target/debug/parapet EVENTS=2000 RUNS=1 RULE_DIRS=rules/windows/builtin/security bench/ingest.sh   # smoke test
set -euo pipefail
# The benchmark drives the server as the bootstrap administrator, who has no second factor.
export PARAPET_PROVIDER_MFA_REQUIRED=false
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
EVENTS=${EVENTS:-200000}
CLIENTS=${CLIENTS:-2}
BATCH=${BATCH:-5000}
SIGMA=${SIGMA:-../shared/data/sigma}
RULE_DIRS=${RULE_DIRS:-"rules rules-emerging-threats rules-threat-hunting rules-compliance rules-dfir"}
TARGET=${CARGO_TARGET_DIR:-target}
DATA=$TARGET/bench-data/ingest
mkdir -p "$DATA"
[[ -d $SIGMA/regression ]] || { echo "missing $SIGMA (the shared SigmaHQ data beside the checkout)" >&2; exit 1; }

if [[ -z ${PARAPET_BIN:-} ]]; then
    cargo build --release -q -p parapet
    PARAPET_BIN=$TARGET/release/parapet
fi
BIN=$PARAPET_BIN

RULES=()
for d in $RULE_DIRS; do
    # Only directories that hold rules (rules-dfir ships a README only).
    [[ -n $(find "$SIGMA/$d" \( -name '*.yml' -o -name '*.yaml' \) -print -quit 2>/dev/null) ]] && RULES+=("$SIGMA/$d")
done
[[ ${#RULES[@]} -gt 0 ]] || { echo "no rule directory found under $SIGMA" >&2; exit 1; }

events=$DATA/events-$EVENTS.jsonl
[[ -s $events ]] || python3 bench/detect_events.py generate --corpus "$SIGMA/regression" --count "$EVENTS" --out "$events"
# One part per client, so that the server's cores are all busy.
rm -f "$DATA"/part-*
split -n "l/$CLIENTS" -d "$events" "$DATA/part-"
mapfile -t PARTS < <(ls "$DATA"/part-*)

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

PW=bench-root-password-0123
run_parapet() { # -> "events/s alerts"
    local dir out pid url token
    dir=$(mktemp -d)
    out=$dir/serve.log
    PARAPET_BOOTSTRAP_PASSWORD=$PW PARAPET_LOG=warn "$BIN" serve --listen 127.0.0.1:0 --data-dir "$dir/data" >"$out" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        url=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$out")
        [[ -n $url ]] && break
        sleep 0.2
    done
    [[ -n $url ]] || { cat "$out" >&2; kill "$pid"; exit 1; }
    export PARAPET_SERVER=$url PARAPET_CONFIG_DIR=$dir/cfg
    echo "$PW" | "$BIN" login --server "$url" --username admin --password-stdin >/dev/null
    token=$(sed -n 's/.*"token": *"\([^"]*\)".*/\1/p' "$dir/cfg/credentials.json")
    export PARAPET_TOKEN=$token
    "$BIN" tenant create bench >/dev/null
    local t0 t1
    t0=$(date +%s.%N)
    for r in "${RULES[@]}"; do "$BIN" rules import --tenant provider "$r" >/dev/null; done
    t1=$(date +%s.%N)
    echo "  uploaded the rules in $(echo "$t1 - $t0" | bc) s" >&2
    t0=$(date +%s.%N)
    local pids=()
    for p in "${PARTS[@]}"; do
        "$BIN" ingest --tenant bench --batch-size "$BATCH" "$p" --json >"$p.out" 2>"$p.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || { cat "$DATA"/part-*.err >&2; kill "$pid"; exit 1; }; done
    t1=$(date +%s.%N)
    local accepted alerts
    accepted=$(cat "$DATA"/part-*.out | sed -n 's/.*"accepted": *\([0-9]*\).*/\1/p' | paste -sd+ | bc)
    alerts=$("$BIN" alerts list --tenant bench --limit 100000 --json | grep -c '"id"' || true)
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    [[ $accepted -eq $EVENTS ]] || { echo "accepted $accepted of $EVENTS" >&2; exit 1; }
    echo "$(echo "$EVENTS / ($t1 - $t0)" | bc) $alerts"
}

run_reference() { # -> events/s
    local err args=()
    for r in "${RULES[@]}"; do args+=(--rules "$r"); done
    err=$(mktemp)
    "$BIN" detect test "${args[@]}" --events "$events" --json >/dev/null 2>"$err"
    sed -n 's/.* matches in .* (\([0-9]*\) events\/s)/\1/p' "$err"
    rm -f "$err"
}

echo "Parapet end to end (HTTP ingest -> store -> detect -> alert, SQLite): $EVENTS events, $CLIENTS clients, batches of $BATCH, $RUNS runs" >&2
P=()
for i in $(seq "$RUNS"); do
    r=$(run_parapet); echo "  run $i: events/s alerts = $r" >&2
    P+=("${r%% *}")
done
p_med=$(printf '%s\n' "${P[@]}" | median)

echo "Reference (parapet detect test, detection alone): $RUNS runs" >&2
R=()
for i in $(seq "$RUNS"); do
    r=$(run_reference); echo "  run $i: events/s = $r" >&2
    R+=("$r")
done
r_med=$(printf '%s\n' "${R[@]}" | median)

echo "RESULT ingest: events=$EVENTS clients=$CLIENTS end_to_end_events_per_s=$p_med detect_only_events_per_s=$r_med ratio=$(echo "scale=2; $p_med / $r_med" | bc)"
