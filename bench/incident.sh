#!/usr/bin/env bash
# Benchmark of incidents (issue 7) on SQLite, through the bench program
# crates/parapet/benches/incident.rs (release profile), 100,000 open incidents of 1,000 tenants:
#
#   timers  6,000 SLA timers fall due over 60 s while the scheduler of `parapet serve` runs:
#           lateness of each breach (commit time minus due time), p50/p99/max
#   board   GET /console/incidents of a real server over HTTP: a tenant's board (its 100
#           incidents) and the provider's (newest 1,000 of all, with the monthly statistics)
#
#   bench/incident.sh                 # both, RUNS=3
#   RUNS=1 INCIDENTS=20000 bench/incident.sh timers
#
# No reference tool is run: TheHive (Java, Cassandra/Elasticsearch) and PagerDuty (a hosted
# service) cannot be installed on this offline machine; the figures are compared with the
# issue's targets (timers at most 1 s late at p99, a tenant board under 100 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
INCIDENTS=${INCIDENTS:-100000}
if [ $# -gt 0 ]; then SCENARIOS=("$@"); else SCENARIOS=(timers board); fi
OUT=$(mktemp /tmp/parapet-incident.XXXXXX)
trap 'rm -f "$OUT"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
values() { grep "^RESULT $1:" "$OUT" | grep -- "$2" | tr ' ' '\n' | sed -n "s/^$3=//p"; }
for s in "${SCENARIOS[@]}"; do
    for r in $(seq 1 "$RUNS"); do
        echo "== $s run $r/$RUNS ($INCIDENTS open incidents)" >&2
        cargo bench -q -p parapet --bench incident -- "$s" --incidents "$INCIDENTS" 2>&1 \
            | tee -a "$OUT" | grep -E '^(RESULT|seeded|created|seeding)' >&2
    done
done
echo
for s in "${SCENARIOS[@]}"; do
    case $s in
    timers)
        echo "timers: lateness p50 $(values timers '' lateness_p50_s | median) s," \
            "p99 $(values timers '' lateness_p99_s | median) s (runs: $(values timers '' lateness_p99_s | paste -sd/))," \
            "max $(values timers '' lateness_max_s | median) s; fired $(values timers '' fired | median)," \
            "missing $(values timers '' missing | median)"
        ;;
    board)
        for v in tenant provider; do
            echo "board ($v): p50 $(values board "viewer=$v" render_p50_ms | median) ms," \
                "p99 $(values board "viewer=$v" render_p99_ms | median) ms" \
                "(runs p50: $(values board "viewer=$v" render_p50_ms | paste -sd/))"
        done
        ;;
    esac
done
