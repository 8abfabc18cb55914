#!/usr/bin/env bash
# Benchmark of the backup engine (issue 8) against restic and BorgBackup (Debian packages
# `restic`, `borgbackup`), side by side in one run, on the issue's 1 GiB set:
#   512 MiB of unique random data (8 files of 64 MiB), 256 MiB of exact copies of four of them,
#   256 MiB of copies of the other four with 1,000 random bytes prepended.
# The set is read once first so that it is in the page cache. Per tool and run: first backup,
# restore, full re-read (`verify --read-data` / `check --read-data` / `check --verify-data`),
# unchanged re-backup; then repository size and peak RSS. Medians of RUNS runs.
# Also: the extra storage per shifted file (repository of the full set minus that of the
# unique part, divided by the four shifted files), for Parapet.
#
#   bench/backup.sh                 # RUNS=3, data under /var/tmp/parapet-bench-backup
#   RUNS=1 DIR=/somewhere bench/backup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DIR=${DIR:-/var/tmp/parapet-bench-backup}
for t in restic borg /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "missing: $t (apt-get install restic borgbackup time)" >&2; exit 1; }
done
cargo build --release -q -p parapet
BIN=${CARGO_TARGET_DIR:-target}/release/parapet

SET=$DIR/set
if [ ! -f "$SET/.complete" ]; then
    rm -rf "$SET"; mkdir -p "$SET/unique" "$SET/copies" "$SET/shifted"
    for i in 1 2 3 4 5 6 7 8; do head -c $((64 << 20)) /dev/urandom > "$SET/unique/u$i.bin"; done
    for i in 1 2 3 4; do cp "$SET/unique/u$i.bin" "$SET/copies/c$i.bin"; done
    for i in 5 6 7 8; do { head -c 1000 /dev/urandom; cat "$SET/unique/u$i.bin"; } > "$SET/shifted/s$i.bin"; done
    touch "$SET/.complete"
fi
cat "$SET"/*/* > /dev/null
BYTES=$(du -sb --exclude=.complete "$SET" | cut -f1)
export RESTIC_PASSWORD=bench-password BORG_PASSPHRASE=bench-password PARAPET_BACKUP_PASSWORD=bench-password
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
OUT=$(mktemp /tmp/parapet-bench-backup.XXXXXX)
trap 'rm -f "$OUT"' EXIT

# t LABEL CMD...: runs CMD under /usr/bin/time; records seconds and peak RSS (KiB).
t() {
    local label=$1; shift
    /usr/bin/time -f "%e %M" -o "$OUT.time" "$@" > /dev/null 2> "$OUT.err" || { cat "$OUT.err" >&2; exit 1; }
    read -r secs rss < "$OUT.time"
    echo "$label $secs $rss" >> "$OUT"
}

one_run() {
    local r=$1
    rm -rf "$DIR"/repo-* "$DIR"/restore-* "$DIR"/key-*
    # Parapet
    "$BIN" backup init --repo "$DIR/repo-parapet" --operator-key "$DIR/key-parapet" > /dev/null
    t parapet.backup "$BIN" backup run --repo "$DIR/repo-parapet" --operator-key "$DIR/key-parapet" "$SET"
    t parapet.restore "$BIN" backup restore --repo "$DIR/repo-parapet" latest --target "$DIR/restore-parapet"
    t parapet.verify "$BIN" backup verify --repo "$DIR/repo-parapet" --read-data
    t parapet.rebackup "$BIN" backup run --repo "$DIR/repo-parapet" --operator-key "$DIR/key-parapet" "$SET"
    echo "parapet.size $(du -sb "$DIR/repo-parapet" | cut -f1) 0" >> "$OUT"
    cmp "$SET/shifted/s5.bin" "$DIR/restore-parapet/set/shifted/s5.bin"
    # restic
    restic init -q -r "$DIR/repo-restic" > /dev/null
    t restic.backup restic -q -r "$DIR/repo-restic" backup "$SET"
    t restic.restore restic -q -r "$DIR/repo-restic" restore latest --target "$DIR/restore-restic"
    t restic.verify restic -q -r "$DIR/repo-restic" check --read-data
    t restic.rebackup restic -q -r "$DIR/repo-restic" backup "$SET"
    echo "restic.size $(du -sb "$DIR/repo-restic" | cut -f1) 0" >> "$OUT"
    # borg
    borg init -e repokey-blake2 "$DIR/repo-borg" > /dev/null
    t borg.backup borg create "$DIR/repo-borg::a$r" "$SET"
    mkdir -p "$DIR/restore-borg"
    t borg.restore sh -c "cd '$DIR/restore-borg' && borg extract '$DIR/repo-borg::a$r'"
    t borg.verify borg check --verify-data "$DIR/repo-borg"
    t borg.rebackup borg create "$DIR/repo-borg::b$r" "$SET"
    echo "borg.size $(du -sb "$DIR/repo-borg" | cut -f1) 0" >> "$OUT"
}

for r in $(seq 1 "$RUNS"); do echo "run $r/$RUNS" >&2; one_run "$r"; done

# Extra storage per shifted file (Parapet): the full set vs its unique part alone.
rm -rf "$DIR/repo-unique" "$DIR/key-unique"
"$BIN" backup init --repo "$DIR/repo-unique" --operator-key "$DIR/key-unique" > /dev/null
"$BIN" backup run --repo "$DIR/repo-unique" --operator-key "$DIR/key-unique" "$SET/unique" > /dev/null
rm -rf "$DIR/repo-full" "$DIR/key-full"
"$BIN" backup init --repo "$DIR/repo-full" --operator-key "$DIR/key-full" > /dev/null
"$BIN" backup run --repo "$DIR/repo-full" --operator-key "$DIR/key-full" "$SET" > /dev/null
U=$(du -sb "$DIR/repo-unique" | cut -f1); F=$(du -sb "$DIR/repo-full" | cut -f1)
rm -rf "$DIR"/repo-* "$DIR"/restore-* "$DIR"/key-*

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
col() { grep "^$1 " "$OUT" | cut -d' ' -f"$2" | median; }
mbs() { awk -v b="$BYTES" -v s="$1" 'BEGIN {printf "%.0f", b / 1e6 / s}'; }
echo "data set: $BYTES bytes; medians of $RUNS runs; $(nproc) cores"
printf '%-22s %12s %12s %12s %14s %14s\n' "" parapet restic borg "parapet/restic" "parapet/borg"
for m in backup restore verify; do
    p=$(mbs "$(col parapet.$m 2)"); r=$(mbs "$(col restic.$m 2)"); b=$(mbs "$(col borg.$m 2)")
    printf '%-22s %9s MB/s %7s MB/s %7s MB/s %13sx %13sx\n' "$m" "$p" "$r" "$b" \
        "$(awk -v a="$p" -v b="$r" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$p" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
done
p=$(col parapet.rebackup 2); r=$(col restic.rebackup 2); b=$(col borg.rebackup 2)
printf '%-22s %11s s %10s s %10s s %13sx %13sx\n' "unchanged re-backup" "$p" "$r" "$b" \
    "$(awk -v a="$p" -v b="$r" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$p" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
p=$(col parapet.size 2); r=$(col restic.size 2); b=$(col borg.size 2)
printf '%-22s %8.1f MiB %8.1f MiB %8.1f MiB %13sx %13sx\n' "repository size" "$(awk -v x="$p" 'BEGIN{print x/1048576}')" \
    "$(awk -v x="$r" 'BEGIN{print x/1048576}')" "$(awk -v x="$b" 'BEGIN{print x/1048576}')" \
    "$(awk -v a="$p" -v b="$r" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$p" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
for m in backup restore verify; do
    p=$(col parapet.$m 3); r=$(col restic.$m 3); b=$(col borg.$m 3)
    printf '%-22s %8.0f MiB %8.0f MiB %8.0f MiB %13sx %13sx\n' "peak RSS ($m)" "$(awk -v x="$p" 'BEGIN{print x/1024}')" \
        "$(awk -v x="$r" 'BEGIN{print x/1024}')" "$(awk -v x="$b" 'BEGIN{print x/1024}')" \
        "$(awk -v a="$p" -v b="$r" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$p" -v b="$b" 'BEGIN{printf "%.2f", a/b}')"
done
awk -v u="$U" -v f="$F" 'BEGIN {printf "extra storage per shifted file (parapet): %.3f MiB\n", (f - u) / 4 / 1048576}'
