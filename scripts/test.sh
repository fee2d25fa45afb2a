#!/usr/bin/env bash
# The whole suite: every test on SQLite, the Django/API tests again on PostgreSQL, then the
# Prometheus rule checks. Called by `make test` (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export PATH="$PWD/$BIN:$PATH"
export DATA_DIR; DATA_DIR=$(mktemp -d /tmp/sp-test.XXXXXX)
trap 'rm -rf "$DATA_DIR"' EXIT
status=0

echo "== 1/3 whole suite on SQLite"
"$BIN/pytest" -q "$@" || status=1

echo "== 2/3 Django and API tests on PostgreSQL"
PG_NAME="sp_test_$$"
DATABASE_URL="postgres://postgres@127.0.0.1:5432/${PG_NAME}" \
  "$BIN/pytest" -q -m "not engine and not slow" accounts volumes backups monitoring storage_platform tests "$@" || status=1

echo "== 3/3 Prometheus rules (promtool)"
if [ -x monitoring/prometheus/check.sh ]; then
  bash monitoring/prometheus/check.sh || status=1
fi
exit $status
