#!/usr/bin/env bash
# `make run`: set up and start the whole platform in the foreground with embedded defaults.
#
#   API (gunicorn) + Celery worker (queues backup, maintenance, default) + Celery beat.
#   Ctrl-C / SIGTERM stops all three; if one of them dies, the others are stopped and this
#   script exits non-zero, so a supervisor (systemd, a terminal) sees the failure.
#
# Honours DATA_DIR (default ./var), PORT (default 8000), BIND_ADDRESS (default 127.0.0.1),
# CELERY_BROKER_URL, ADMIN_TOKEN/BACKUP_TOKEN/READ_TOKEN (or *_TOKEN_FILE) and every other
# variable of docs/configuration.md. Re-running reuses the database, keys and tokens of the
# previous run. Token VALUES are never printed: only the paths of the files holding them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
PYTHON="$BIN/python"

export DJANGO_SETTINGS_MODULE=storage_platform.settings
export DATA_DIR=${DATA_DIR:-./var}
mkdir -p "$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
export PORT=${PORT:-8000}
BIND_ADDRESS=${BIND_ADDRESS:-127.0.0.1}

say() { echo "run: $*" >&2; }

# --- broker: Redis if reachable, else the single-host filesystem transport ------------------
if [ -z "${CELERY_BROKER_URL:-}" ]; then
  if "$PYTHON" - <<'PY' 2>/dev/null
import redis, sys
sys.exit(0 if redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1, socket_timeout=1).ping() else 1)
PY
  then
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
  else
    export CELERY_BROKER_URL=filesystem://
    say "WARNING: no Redis at 127.0.0.1:6379 and CELERY_BROKER_URL unset: using the filesystem broker in $DATA_DIR/broker (single host only, see docs/configuration.md)"
  fi
fi

# --- bootstrap tokens: generated once into $DATA_DIR/tokens/<role> (0600) when not given ----
mkdir -p "$DATA_DIR/tokens"
chmod 700 "$DATA_DIR/tokens"
for role in admin backup read; do
  upper=$(echo "$role" | tr '[:lower:]' '[:upper:]')
  value_var="${upper}_TOKEN"; file_var="${upper}_TOKEN_FILE"
  if [ -n "${!value_var:-}" ] || [ -n "${!file_var:-}" ]; then
    continue
  fi
  token_file="$DATA_DIR/tokens/$role"
  if [ ! -s "$token_file" ]; then
    (umask 077 && "$PYTHON" -c 'import secrets; print("sbp_" + secrets.token_urlsafe(32))' > "$token_file.tmp" \
      && mv "$token_file.tmp" "$token_file")
  fi
  chmod 600 "$token_file"
  export "$file_var=$token_file"
  say "$role token: $token_file"
done

# --- database, static files (bootstrap tokens are synced by the post-migrate hook) ----------
"$PYTHON" manage.py migrate --noinput >/dev/null
"$PYTHON" manage.py collectstatic --noinput >/dev/null
# The backup repository, created once here rather than by whichever worker takes the first job.
say "$("$PYTHON" manage.py init_repository)"

# --- the three processes --------------------------------------------------------------------
pids=()
stopping=0

stop_all() {
  stopping=1
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  # Give them time to finish the current request / task before forcing.
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && return
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap 'say "stopping"; stop_all; exit 0' INT TERM

"$BIN/gunicorn" -c gunicorn.conf.py --bind "$BIND_ADDRESS:$PORT" --workers "${WEB_CONCURRENCY:-2}" \
  --timeout 120 --access-logfile - --access-logformat "%(h)s %(t)s \"%(r)s\" %(s)s %(b)s %(M)sms" \
  storage_platform.wsgi:application &
pids+=($!)
"$BIN/celery" -A storage_platform worker --loglevel "${LOG_LEVEL:-INFO}" \
  -Q "backup,backup.${NODE_NAME:-local},maintenance,default" --hostname "worker@%h" \
  --concurrency "${WORKER_CONCURRENCY:-2}" &
pids+=($!)
"$BIN/celery" -A storage_platform beat --loglevel "${LOG_LEVEL:-INFO}" \
  --scheduler monitoring.scheduler:DatabaseScheduler --pidfile= &
pids+=($!)
say "API on http://$BIND_ADDRESS:$PORT (health: /health, ready: /ready); data in $DATA_DIR; Ctrl-C stops all"

# Wait for the first process to exit; unless we are stopping on purpose, that is a failure.
set +e
wait -n "${pids[@]}"
status=$?
set -e
if [ $stopping -eq 0 ]; then
  say "a process exited (status $status); stopping the others"
  stop_all
  exit $(( status == 0 ? 1 : status ))
fi
