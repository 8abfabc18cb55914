#!/usr/bin/env bash
# Benchmark of event-to-notification latency through the outbox (issue 6 §6 target: p99 under
# 2 s): bench/notify_latency.py against the release binary, RUNS times; reference: direct POSTs
# to the same webhook receiver.
#
#   bench/notify.sh                         # 500 messages at 50/s, 3 runs
#   COUNT=2000 RATE=200 bench/notify.sh
#   PARAPET_BIN=target/debug/parapet COUNT=20 RUNS=1 bench/notify.sh   # quick check, no build
set -euo pipefail
# The benchmark drives the server as the bootstrap administrator, who has no second factor.
export PARAPET_PROVIDER_MFA_REQUIRED=false
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
if [[ -z ${PARAPET_BIN:-} ]]; then
    cargo build -q --release -p parapet
    export PARAPET_BIN=${CARGO_TARGET_DIR:-target}/release/parapet
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%FT%TZ)"
for run in $(seq 1 "$RUNS"); do
    echo "== run $run"
    python3 bench/notify_latency.py
done
