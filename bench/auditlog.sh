#!/usr/bin/env bash
# Benchmark of the tamper-evident audit log (issue 3) on SQLite, through the bench program
# crates/audit/benches/log.rs (release profile):
#
#   append  writers call append_audit_batch while one AuditLog integrates (paced as
#           AuditLog::run): records integrated per second and checkpoint lag, at the target's
#           offered rate (RATE, 3 runs) and with the writers unthrottled (1 run)
#   proof   random inclusion and consistency proofs on a 10,000,000-record log (built once and
#           cached under target/bench-data/, ~4 GB; reference: the same proofs from the whole
#           tree in memory)
#   verify  `parapet audit verify` of that log's export (~4 GB) against `sha256sum` and
#           `openssl dgst -sha256` on the same file (the floor: verify hashes every byte)
#
#   bench/auditlog.sh                       # everything
#   bench/auditlog.sh append                # one scenario
#   RUNS=5 SECS=30 RATE=75000 bench/auditlog.sh append
#
# Tessera (the Go reference for tile-based logs) is not run here: it needs Go >= 1.24 and its
# modules, and only Debian's Go 1.19 is installable on this machine; its published figure is
# quoted in BENCHMARKS.md instead.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECS:-20}
RATE=${RATE:-50000}
SIZE=${SIZE:-10000000}
WRITERS=${WRITERS:-2}
BATCH=${BATCH:-1000}
if [ $# -gt 0 ]; then SCENARIOS=("$@"); else SCENARIOS=(append proof verify); fi
OUT=$(mktemp /tmp/parapet-auditlog.XXXXXX)
trap 'rm -f "$OUT"' EXIT

bench() { cargo bench -q -p parapet-audit --bench log -- "$@" 2>&1 | tee -a "$OUT" | grep -E '^(RESULT|append:|proof:|verify:|  run:|building|exported|per-second)' >&2; }
# value KEY from the RESULT lines of scenario $1, one per line
values() { grep "^RESULT $1:" "$OUT" | tr ' ' '\n' | sed -n "s/^$2=//p"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
med() { values "$1" "$2" | median; }
runs() { values "$1" "$2" | paste -sd/ | sed 's,/, / ,g'; }

cargo build --release -q -p parapet
cargo bench -q -p parapet-audit --bench log --no-run 2>/dev/null

for s in "${SCENARIOS[@]}"; do
  case $s in
    append)
      for _ in $(seq "$RUNS"); do
        bench append --secs "$SECS" --rate "$RATE" --writers "$WRITERS" --batch "$BATCH"
      done
      sed -i "s/^RESULT append:/RESULT append-rate:/" "$OUT"
      bench append --secs "$SECS" --rate 0 --writers "$WRITERS" --batch "$BATCH"
      sed -i "s/^RESULT append:/RESULT append-max:/" "$OUT"
      ;;
    proof) for _ in $(seq "$RUNS"); do bench proof --size "$SIZE"; done ;;
    verify) bench verify --size "$SIZE" --runs "$RUNS" ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
  esac
done

echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), load average now $(cut -d' ' -f1-3 /proc/loadavg)"
if grep -q '^RESULT append-rate:' "$OUT"; then
  echo "append at $RATE records/s offered, $WRITERS writers x $BATCH-record batches, ${SECS}s, $RUNS runs:"
  echo "  integrated/s (median of per-second rates): $(med append-rate integrated_per_s_median)  [runs $(runs append-rate integrated_per_s_median)]"
  echo "  checkpoint lag p50: $(med append-rate lag_p50_ms) ms  p99: $(med append-rate lag_p99_ms) ms  [p99 runs $(runs append-rate lag_p99_ms)]"
  echo "append unthrottled (1 run): appended/s $(med append-max appended_per_s_median), integrated/s $(med append-max integrated_per_s_median), lag p50 $(med append-max lag_p50_ms) ms, p99 $(med append-max lag_p99_ms) ms"
fi
if grep -q '^RESULT build:' "$OUT"; then
  echo "built the $SIZE-record log: appends $(med build append_s) s ($(med build append_per_s)/s), integration $(med build integrate_s) s ($(med build integrate_per_s)/s)"
fi
if grep -q '^RESULT proof:' "$OUT"; then
  echo "proofs on $SIZE records, $RUNS runs (medians of the runs' p50 / p99, µs):"
  for k in inclusion_random inclusion_warm inclusion_cold inclusion_memory consistency consistency_memory log_head; do
    printf '  %-20s p50 %8s   p99 %8s   [p50 runs %s]\n' "$k" "$(med proof ${k}_p50_us)" "$(med proof ${k}_p99_us)" "$(runs proof ${k}_p50_us)"
  done
  echo "  ratio inclusion (random) / in-memory: $(echo "$(med proof inclusion_random_p50_us) $(med proof inclusion_memory_p50_us)" | awk '{printf "%.0f", $1/$2}')x"
fi
if grep -q '^RESULT verify:' "$OUT"; then
  echo "verify of the $SIZE-record export ($(med verify bytes) bytes), median of $RUNS runs:"
  echo "  parapet audit verify $(med verify verify_s) s   sha256sum $(med verify sha256sum_s) s   openssl sha256 $(med verify openssl_s) s"
  echo "  ratio verify/sha256sum $(med verify ratio_sha256sum)   verify/openssl $(med verify ratio_openssl)"
fi
