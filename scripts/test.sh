#!/usr/bin/env bash
# The whole suite: every test on SQLite, the Django/API tests again on PostgreSQL, then the
# Prometheus rule checks. Called by `make test` (and so by .ci/run).
#
# The PostgreSQL pass runs at the same time as the SQLite pass: the SQLite pass spends much
# of its time waiting on real worker, S3 and Prometheus processes, so the two overlap well
# on two cores. Each pass gets its own DATA_DIR so neither sees the other's volumes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export PATH="$PWD/$BIN:$PATH"
SCRATCH=$(mktemp -d /tmp/sp-test.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
mkdir -p "$SCRATCH/sqlite" "$SCRATCH/postgres"

echo "== 2/3 Django and API tests on PostgreSQL (started in the background; output below)"
PG_NAME="sp_test_$$"
# Its own Redis database too, so its queued messages never reach the SQLite pass's workers.
DATA_DIR="$SCRATCH/postgres" CELERY_BROKER_URL=redis://127.0.0.1:6379/9 TEST_REDIS_URL=redis://127.0.0.1:6379/9 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/${PG_NAME}" \
  "$BIN/pytest" -q -m "not engine and not slow" \
  accounts volumes backups monitoring storage_platform tests "$@" >"$SCRATCH/postgres.log" 2>&1 &
postgres_pid=$!

echo "== 1/3 whole suite on SQLite"
sqlite_status=0
DATA_DIR="$SCRATCH/sqlite" "$BIN/pytest" -q --durations=15 "$@" || sqlite_status=$?

postgres_status=0
wait "$postgres_pid" || postgres_status=$?
echo "== 2/3 Django and API tests on PostgreSQL (output)"
cat "$SCRATCH/postgres.log"

echo "== 3/3 Prometheus rules (promtool)"
promtool_status=0
bash monitoring/prometheus/check.sh || promtool_status=$?

echo "== summary: sqlite=$sqlite_status postgres=$postgres_status promtool=$promtool_status"
[ "$sqlite_status" = 0 ] && [ "$postgres_status" = 0 ] && [ "$promtool_status" = 0 ]
