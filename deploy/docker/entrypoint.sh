#!/bin/sh
# Container entrypoint: one image, four roles. The first argument picks the role; anything
# else is run as given (e.g. `python manage.py createsuperuser`).
#
#   api      gunicorn on 0.0.0.0:$PORT (static files collected into $DATA_DIR/static first)
#   worker   Celery worker on the backup (+ node-routed), maintenance and default queues
#   beat     Celery beat with the database scheduler (run exactly one)
#   migrate  apply migrations (the post-migrate hook syncs the bootstrap tokens), then
#            create or open the backup repository (manage.py init_repository)
#
# Configuration comes from the environment only (docs/configuration.md); secrets arrive as
# *_FILE paths under /run/secrets and are never printed.
set -eu

case "${1:-api}" in
  api)
    shift || true
    python manage.py collectstatic --noinput >/dev/null
    exec gunicorn -c gunicorn.conf.py --bind "0.0.0.0:${PORT:-8000}" \
      --workers "${WEB_CONCURRENCY:-2}" --timeout "${GUNICORN_TIMEOUT:-120}" \
      --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1}" --access-logfile - "$@"
    ;;
  worker)
    shift
    exec celery -A storage_platform worker --loglevel "${LOG_LEVEL:-INFO}" \
      --queues "${WORKER_QUEUES:-backup,backup.${NODE_NAME:-local},maintenance,default}" \
      --concurrency "${WORKER_CONCURRENCY:-2}" --hostname "worker@%h" "$@"
    ;;
  beat)
    shift
    exec celery -A storage_platform beat --loglevel "${LOG_LEVEL:-INFO}" \
      --scheduler monitoring.scheduler:DatabaseScheduler --pidfile= "$@"
    ;;
  migrate)
    shift
    # then the backup repository, once, before any worker starts (race-free if repeated)
    python manage.py migrate --noinput "$@"
    exec python manage.py init_repository
    ;;
  *)
    exec "$@"
    ;;
esac
