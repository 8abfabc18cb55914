#!/usr/bin/env bash
# Memory of live Sigma correlation state (issue 6: 1,000,000 live correlation keys in under
# 256 MiB): crates/detect/examples/correlation_keys.rs feeds N events, each opening a new key of
# an event_count correlation (group-by a field that never repeats), and prints the live keys,
# the resident memory (whole process and the part the keys added), the rate and the size of the
# snapshot that `serve` saves. The target (256 MiB) is the reference; medians of RUNS runs.
#
#   bench/correlation.sh                   # release build, 1,000,000 keys, 3 runs
#   KEYS=2000 RUNS=1 PROFILE=dev bench/correlation.sh   # quick check on a debug build
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-1000000}
RUNS=${RUNS:-3}
PROFILE=${PROFILE:-release}
flag=(--release)
[[ $PROFILE == dev ]] && flag=()
cargo build -q "${flag[@]}" -p parapet-detect --example correlation_keys
dir=${CARGO_TARGET_DIR:-target}/$([[ $PROFILE == dev ]] && echo debug || echo release)/examples
out=()
for _ in $(seq "$RUNS"); do
    line=$("$dir/correlation_keys" "$KEYS")
    echo "$line"
    out+=("$line")
done
median() { printf '%s\n' "${out[@]}" | sed -n "s/.* $1=\([0-9.]*\).*/\1/p" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
keys_mib=$(median keys_rss_mib)
echo "median: live keys $(median live_keys), resident $(median rss_mib) MiB (keys: $keys_mib MiB; target < 256 MiB, ratio $(awk -v m="$keys_mib" 'BEGIN {printf "%.2f", m/256}')), $(median events_per_s) events/s, snapshot $(median snapshot_mib) MiB in $(median snapshot_s) s"
