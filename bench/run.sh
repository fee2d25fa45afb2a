#!/usr/bin/env bash
# Engine benchmark: the engine, restic and borg on the same 1 GiB data set and steps
# (../shared/bench/peers.sh), then one table with ratios (bench/table.py).
#
#   bash bench/run.sh            (or: make bench)
#
# Env: BENCH_DIR (/tmp/sp-bench: data set, generated once, and run folders),
#      DATA (default $BENCH_DIR/data, the 1 GiB seed-42 set; e.g. a bench/small_files.py tree),
#      TOOLS ("engine restic borg"), SHARED_BENCH (../shared/bench).
# Needs restic, borg and GNU time (apt-get install restic borgbackup time) and ~4 GiB in /tmp.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SHARED=${SHARED_BENCH:-$(cd "$ROOT/../shared/bench" && pwd)}
BENCH_DIR=${BENCH_DIR:-/tmp/sp-bench}
DATA=${DATA:-$BENCH_DIR/data}
mkdir -p "$BENCH_DIR"
if [ "$DATA" = "$BENCH_DIR/data" ] && [ ! -f "$BENCH_DIR/data.done" ]; then
  rm -rf "$DATA"
  python3 "$SHARED/make_dataset.py" "$DATA" --size 1G --seed 42
  touch "$BENCH_DIR/data.done"
fi
SCRATCH=$BENCH_DIR/run-$(date +%Y%m%d-%H%M%S)
# shellcheck disable=SC2086
PLUGIN=$HERE/engine_adapter.sh bash "$SHARED/peers.sh" "$DATA" "$SCRATCH" ${TOOLS:-engine restic borg}
# Restore's floor: `cp -a` of the same source onto the same disk (warm cache, like restore).
sync; t0=$(date +%s%N)
/usr/bin/time -f "%U\t%S\t%M" -o "$SCRATCH/cp.time" cp -a "$DATA" "$SCRATCH/cp-copy"
t1=$(date +%s%N)
printf 'cp\trestore\t%.3f\t%s\t%s\n' "$(echo "($t1 - $t0) / 1000000000" | bc -l)" \
  "$(cat "$SCRATCH/cp.time")" "$(du -sb "$DATA" | cut -f1)" >>"$SCRATCH/results.tsv"
rm -rf "$SCRATCH/cp-copy"
python3 "$HERE/table.py" "$SCRATCH" | tee "$SCRATCH/table.md"
