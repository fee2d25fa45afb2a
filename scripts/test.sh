#!/usr/bin/env bash
# The whole suite, in parallel lanes, then the Prometheus rule checks. Called by `make test`
# (and so by .ci/run).
#
# Most of the suite's time is spent waiting on real processes (Celery workers, gunicorn,
# moto_server, Prometheus, Chromium), so independent lanes overlap well even on two cores.
# Each lane is its own pytest process with its own DATA_DIR and its own Redis database, so no
# lane sees another's volumes or steals another's queued messages:
#
#   engine    pure backup-engine tests (no Django database)               Redis db 10
#   django    the quick tests of backups and volumes, and the security     Redis db 11
#             tests (hostile input, tokens, throttling), on SQLite
#   platform  every other quick test (accounts, console, monitoring,       Redis db 7
#             settings and API-wide tests, ops files), on SQLite
#   faults    slow tests that kill, cut or restart things; the browser     Redis db 12
#             tests; the collection's sanity and lint
#   deploys   fresh deployments (make run's processes), the upgrade of a   Redis db 15
#             real deployment and its rollback
#   clients   slow tests of the clients: storagectl, API fuzzing           Redis db 14
#   ops       slow tests of the Ansible collection and playbooks           Redis db 8
#             (their own workers use db 6)
#   slow      the other slow tests (real workers, live servers)           Redis db 13
#   postgres  the quick tests of the database's users again, on PostgreSQL  Redis db 9
#             (POSTGRES_TESTS: where the database changes the outcome)
#
# Extra arguments go to every lane's pytest (`bash scripts/test.sh -x`). Each lane's output is
# printed whole, lane after lane, as the lanes finish; the last line totals them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export PATH="$PWD/$BIN:$PATH"
# The suite starts hundreds of Python processes (workers, servers, command-line tools): let them
# cache compiled modules, or each one compiles every module it imports again.
unset PYTHONDONTWRITEBYTECODE
SCRATCH=$(mktemp -d /tmp/sp-test.XXXXXX)
trap 'rm -rf "$SCRATCH"' EXIT
PG_NAME="sp_test_$$"
# The faults lane is the shortest of the slow ones: it also takes the browser tests and the
# collection's sanity and lint, so that no lane runs alone at the end.
FAULT_TESTS=(tests/faults tests/browser tests/ops/test_collection_quality.py)
DEPLOY_TESTS=(tests/test_fresh_deployment.py tests/ops/test_lcm_upgrade_live.py)
CLIENT_TESTS=(tests/storagectl tests/test_api_fuzz.py)
OPS_TESTS=(tests/ops)
# What the database can change: tokens and audit rows, conditional job-state updates, quota
# reservations under concurrent uploads, policy and beat rows, aggregates of the metrics and the
# overview, cursor pagination, NUL bytes, the API over all of them for every role. The rest of
# the quick tests (validation, parsing, pages, settings, files) runs on SQLite only.
POSTGRES_TESTS=(accounts tests/test_role_matrix.py storage_platform/tests/test_pagination.py
                console/tests/test_overview.py
                backups/tests/test_api_backups.py backups/tests/test_jobs.py backups/tests/test_api_jobs.py
                backups/tests/test_api_volume_references.py backups/tests/test_pack_verification.py
                backups/tests/test_replication.py
                backups/scheduling/tests/test_policy_api.py backups/scheduling/tests/test_sync.py
                backups/scheduling/tests/test_fanout.py backups/scheduling/tests/test_missed_runs.py
                backups/scheduling/tests/test_reconciler.py backups/scheduling/tests/test_backup_all_command.py
                volumes/tests/test_volume_api.py volumes/tests/test_reservations.py
                volumes/tests/test_parallel_uploads.py
                monitoring/tests/test_collectors.py monitoring/tests/test_heartbeats_and_readiness.py
                monitoring/tests/test_liveness.py)

declare -A lane_pid lane_started
start_lane() {  # name redis-db [VAR=value ...] -- pytest arguments
  local name=$1 db=$2
  shift 2
  local environment=()
  while [ "$1" != "--" ]; do environment+=("$1"); shift; done
  shift
  mkdir -p "$SCRATCH/$name"
  lane_started[$name]=$(date +%s)
  env DATA_DIR="$SCRATCH/$name" CELERY_BROKER_URL="redis://127.0.0.1:6379/$db" \
    TEST_REDIS_URL="redis://127.0.0.1:6379/$db" "${environment[@]}" \
    /usr/bin/time -f "lane $name: %U s user + %S s system CPU (pytest and the processes it waited for)" \
    "$BIN/pytest" -q --durations=5 "$@" >"$SCRATCH/$name.log" 2>&1 &
  lane_pid[$name]=$!
  echo "== lane $name started (pid ${lane_pid[$name]})"
}

start_lane faults 12 -- -m slow "${FAULT_TESTS[@]}" "$@"
start_lane deploys 15 -- -m slow "${DEPLOY_TESTS[@]}" "$@"
start_lane clients 14 -- -m slow "${CLIENT_TESTS[@]}" "$@"
start_lane ops 8 -- -m slow "${OPS_TESTS[@]}" --ignore=tests/ops/test_lcm_upgrade_live.py \
  --ignore=tests/ops/test_collection_quality.py "$@"
start_lane slow 13 -- -m slow \
  $(printf -- '--ignore=%s ' "${FAULT_TESTS[@]}" "${DEPLOY_TESTS[@]}" "${CLIENT_TESTS[@]}" "${OPS_TESTS[@]}") "$@"
start_lane django 11 -- -m "not engine and not slow" backups volumes tests/security "$@"
start_lane platform 7 -- -m "not engine and not slow" accounts console monitoring storage_platform tests \
  --ignore=tests/security "$@"
start_lane engine 10 -- -m "engine and not slow" "$@"
start_lane postgres 9 DATABASE_URL="postgres://postgres@127.0.0.1:5432/${PG_NAME}" -- \
  -m "not engine and not slow" "${POSTGRES_TESTS[@]}" "$@"

failed=0
total_passed=0
total_failed=0
summary=()
for name in faults deploys clients ops slow django platform engine postgres; do
  status=0
  wait "${lane_pid[$name]}" || status=$?
  echo
  echo "== lane $name (exit $status, $(( $(date +%s) - ${lane_started[$name]} )) s)"
  cat "$SCRATCH/$name.log"
  # pytest's own closing line, e.g. "12 failed, 700 passed, 3 warnings in 61.2s (0:01:01)".
  last=$(grep -E '^(=+ )?[0-9]+ (passed|failed|errors?|deselected|skipped).* in [0-9.]+s' \
         "$SCRATCH/$name.log" | tail -1 || true)
  passed=$(grep -oE '[0-9]+ passed' <<<"$last" | grep -oE '[0-9]+' || echo 0)
  lane_failed=$(( $(grep -oE '[0-9]+ failed' <<<"$last" | grep -oE '[0-9]+' || echo 0) \
                + $(grep -oE '[0-9]+ errors?' <<<"$last" | grep -oE '[0-9]+' || echo 0) ))
  # A lane that ran no test (pytest exits 5) is a broken lane, not a pass.
  if [ "$status" != 0 ] || [ "$passed" -eq 0 ]; then failed=1; fi
  total_passed=$(( total_passed + passed ))
  total_failed=$(( total_failed + lane_failed ))
  summary+=("$name=$status")
done

echo
echo "== Prometheus rules (promtool)"
promtool_status=0
bash monitoring/prometheus/check.sh || promtool_status=$?
[ "$promtool_status" = 0 ] || failed=1

echo "== summary: ${summary[*]} promtool=$promtool_status"
echo "$total_passed passed, $total_failed failed"
exit $failed
