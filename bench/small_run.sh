#!/usr/bin/env bash
# Many small files: full backup and restore, engine vs restic, and `cp -a` of the source.
#
#   bash bench/small_run.sh [RUNS]      (default 1)
#
# Source: bench/small_files.py (100,000 files of 0-300 bytes in 100 directories, seed 42),
# generated once under BENCH_DIR (/tmp/sp-bench). Each step runs under /usr/bin/time -v
# after a sync, on a warm page cache; results.tsv has the peers.sh columns
# (tool, step, wall s, user s, sys s, max RSS KiB, bytes) and the table is printed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
PY=${ENGINE_PY:-$ROOT/.venv/bin/python}
BENCH_DIR=${BENCH_DIR:-/tmp/sp-bench}
SRC=$BENCH_DIR/small
RUNS=${1:-1}
[ -f "$BENCH_DIR/small.done" ] || { rm -rf "$SRC"; python3 "$HERE/small_files.py" "$SRC"; touch "$BENCH_DIR/small.done"; }
OUT=$BENCH_DIR/small-run-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
BYTES=$(du -sb "$SRC" | cut -f1)
export RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR=$OUT/restic-cache
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/engine.key"
find "$SRC" -type f -print0 | xargs -0 cat >/dev/null

timed() {  # timed TOOL STEP COMMAND...
  local tool=$1 step=$2; shift 2
  sync; sleep 1
  local t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -f "%U\t%S\t%M" -o "$OUT/time" "$@" >"$OUT/$tool.$step.log" 2>&1
  t1=$(date +%s%N)
  printf '%s\t%s\t%.3f\t%s\t%s\n' "$tool" "$step" "$(echo "($t1 - $t0) / 1000000000" | bc -l)" \
    "$(cat "$OUT/time")" "$BYTES" | tee -a "$RESULTS"
}

for run in $(seq "$RUNS"); do
  rm -rf "$OUT/engine-repo" "$OUT/restic-repo" "$OUT/restore" "$OUT/cp-copy"
  (cd "$ROOT" && "$PY" -m backups.engine init --repo "$OUT/engine-repo" --key-file "$OUT/engine.key" >/dev/null)
  restic init --repo "$OUT/restic-repo" >/dev/null
  timed engine full bash -c "cd '$ROOT' && '$PY' -m backups.engine backup --repo '$OUT/engine-repo' --key-file '$OUT/engine.key' '$SRC'"
  timed restic full restic backup --repo "$OUT/restic-repo" --host bench "$SRC"
  timed engine restore bash -c "mkdir -p '$OUT/restore/engine' && cd '$ROOT' && '$PY' -m backups.engine restore --repo '$OUT/engine-repo' --key-file '$OUT/engine.key' latest '$OUT/restore/engine'"
  timed restic restore restic restore --repo "$OUT/restic-repo" latest --host bench --target "$OUT/restore/restic"
  timed cp restore cp -a "$SRC" "$OUT/cp-copy"
  diff -r "$SRC" "$OUT/restore/engine" >/dev/null && diff -r "$SRC" "$OUT/restore/restic$SRC" >/dev/null \
    && echo "run $run: both restores identical"
  printf 'engine\trepo\t\t\t\t\t%s\nrestic\trepo\t\t\t\t\t%s\n' "$(du -sb "$OUT/engine-repo" | cut -f1)" \
    "$(du -sb "$OUT/restic-repo" | cut -f1)" >>"$RESULTS"
done
rm -rf "$OUT/engine-repo" "$OUT/restic-repo" "$OUT/restore" "$OUT/cp-copy"
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
def median(tool, step, column=2):
    values = [float(r[column]) for r in rows if r[0] == tool and r[1] == step and r[column]]
    return statistics.median(values) if values else None
print("| step | engine s | restic s | cp -a s | engine vs restic |\n|---|---|---|---|---|")
for step in ("full", "restore"):
    engine, restic = median("engine", step), median("restic", step)
    copy = median("cp", "restore") if step == "restore" else None
    shown = f"{copy:.2f}" if copy else "-"
    print(f"| {step} | {engine:.2f} | {restic:.2f} | {shown} | {restic / engine:.2f}x |")
rss = {tool: max(int(r[5]) for r in rows if r[0] == tool and r[5]) / 1024 for tool in ("engine", "restic")}
repo = {tool: median(tool, "repo", 6) for tool in ("engine", "restic")}
print(f"| peak RSS MiB | {rss['engine']:.0f} | {rss['restic']:.0f} | | {rss['restic'] / rss['engine']:.2f}x |")
print(f"| repository bytes | {repo['engine']:,.0f} | {repo['restic']:,.0f} | | {repo['restic'] / repo['engine']:.2f}x |")
PY
