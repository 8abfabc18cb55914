#!/usr/bin/env bash
# Benchmark of the asset inventory's cross-tenant correlation (X.1642 8.3 last paragraph; the
# affected-tenant check of 8.6.4) on SQLite, through crates/inventory/benches/related.rs
# (release profile): `Inventory::related` for random assets of an inventory of TENANTS tenants
# with PER_TENANT assets each (built once, cached under target/bench-data/), beside the naive
# answer (a LIKE scan over every asset's applications), which must agree.
#
#   bench/inventory.sh                          # 10,000 tenants x 100 assets = 1,000,000 assets
#   TENANTS=1000 PER_TENANT=100 bench/inventory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${TENANTS:-10000}
PER_TENANT=${PER_TENANT:-100}
QUERIES=${QUERIES:-300}
RUNS=${RUNS:-3}
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(date -u +%FT%TZ)"
for run in $(seq 1 "$RUNS"); do
    echo "== run $run"
    cargo bench -q -p parapet-inventory --bench related -- run \
        --tenants "$TENANTS" --per-tenant "$PER_TENANT" --queries "$QUERIES"
done
