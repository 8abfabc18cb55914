#!/usr/bin/env bash
# Benchmark of Sigma detection (issue 6): events/s through `parapet detect test` (release build)
# with every SigmaHQ rule loaded (../shared/data/sigma/rules*), on a JSON-lines file of Windows
# events in the evtx_dump shape generated from the real events of the SigmaHQ regression corpus
# (bench/detect_events.py generate: 5% real, 95% with benign field values).
#
# Reference in the same run: Zircolite's method with pySigma — every rule converted once to SQL
# by pySigma-backend-sqlite (Sysmon + Windows pipelines; conversion cached, not timed), the
# events flattened into an in-memory SQLite table and every rule's SQL run over it. Zircolite
# itself is not on PyPI; this is its engine (pySigma's SQLite backend has a Zircolite format).
#
#   bench/detect.sh                       # 3 runs; 1,000,000 events for Parapet, 50,000 for the reference
#   RUNS=5 EVENTS=2000000 REF_EVENTS=100000 bench/detect.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
EVENTS=${EVENTS:-1000000}
REF_EVENTS=${REF_EVENTS:-50000}
SIGMA=${SIGMA:-../shared/data/sigma}
TARGET=${CARGO_TARGET_DIR:-target}
DATA=$TARGET/bench-data/detect
mkdir -p "$DATA"
[[ -d $SIGMA/regression ]] || { echo "missing $SIGMA (the shared SigmaHQ data beside the checkout)" >&2; exit 1; }

RULES=()
for d in rules rules-emerging-threats rules-threat-hunting rules-compliance rules-dfir; do
    [[ -d $SIGMA/$d ]] && RULES+=(--rules "$SIGMA/$d")
done

# The reference's Python environment (pySigma's Sysmon and Windows pipelines still declare
# pySigma < 2, though they work with it: installed without their dependency pins).
PYENV=$TARGET/bench-pyenv
if [[ ! -x $PYENV/bin/python ]] || ! "$PYENV/bin/python" -c 'import sigma.pipelines.sysmon, sigma.backends.sqlite' 2>/dev/null; then
    python3 -m venv "$PYENV"
    "$PYENV/bin/pip" install -q pysigma==2.0.1 pysigma-backend-sqlite==2.1.1
    "$PYENV/bin/pip" install -q --no-deps pysigma-pipeline-sysmon==2.0.0 pysigma-pipeline-windows==2.0.1
fi
PY=$PYENV/bin/python

big=$DATA/events-$EVENTS.jsonl
small=$DATA/events-$REF_EVENTS.jsonl
[[ -s $big ]] || "$PY" bench/detect_events.py generate --corpus "$SIGMA/regression" --count "$EVENTS" --out "$big"
[[ -s $small ]] || "$PY" bench/detect_events.py generate --corpus "$SIGMA/regression" --count "$REF_EVENTS" --out "$small"

cargo build --release -q -p parapet
BIN=$TARGET/release/parapet

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

run_parapet() { # file -> events/s from the summary line, matches
    local file=$1 err
    err=$(mktemp)
    /usr/bin/time -f 'rss_kb=%M' "$BIN" detect test "${RULES[@]}" --events "$file" --json >/dev/null 2>"$err"
    local eps matches rss
    eps=$(sed -n 's/.* matches in .* (\([0-9]*\) events\/s)/\1/p' "$err")
    matches=$(sed -n 's/^[0-9]* events, \([0-9]*\) matches.*/\1/p' "$err")
    rss=$(sed -n 's/^rss_kb=//p' "$err")
    grep '^loaded' "$err" >&2
    rm -f "$err"
    echo "$eps $matches $rss"
}

echo "Parapet: $EVENTS events, $RUNS runs" >&2
P=()
for i in $(seq "$RUNS"); do
    r=$(run_parapet "$big"); echo "  run $i: events/s matches rss_kb = $r" >&2
    P+=("${r%% *}")
done
p_med=$(printf '%s\n' "${P[@]}" | median)

echo "Parapet on the reference's $REF_EVENTS events" >&2
PS=()
for i in $(seq "$RUNS"); do
    r=$(run_parapet "$small"); echo "  run $i: $r" >&2
    PS+=("${r%% *}")
done
ps_med=$(printf '%s\n' "${PS[@]}" | median)

echo "Reference (pySigma -> SQLite, Zircolite's method): $REF_EVENTS events, $RUNS runs" >&2
R=()
for i in $(seq "$RUNS"); do
    line=$("$PY" bench/detect_events.py reference "${RULES[@]}" --events "$small" --cache "$DATA")
    echo "  run $i: $line" >&2
    R+=("$(sed -n 's/.*events_per_s=\([0-9]*\).*/\1/p' <<<"$line")")
done
r_med=$(printf '%s\n' "${R[@]}" | median)

echo
echo "RESULT parapet_big events_per_s_median=$p_med runs=${P[*]}"
echo "RESULT parapet_small events_per_s_median=$ps_med runs=${PS[*]}"
echo "RESULT reference events_per_s_median=$r_med runs=${R[*]}"
awk -v p="$ps_med" -v r="$r_med" 'BEGIN {printf "RESULT ratio parapet/reference (same %s-event file) = %.1f\n", "small", p / r}'
