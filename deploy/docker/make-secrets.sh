#!/bin/sh
# Create the secret files docker-compose.yml mounts under /run/secrets, once: existing files
# are kept, so re-running never rotates a key by accident (losing repository_key loses every
# backup). They live in deploy/docker/secrets/, which git ignores.
#
#   sudo sh deploy/docker/make-secrets.sh        # then: docker compose up -d
#
# Compose mounts file secrets as they are on the host (owner and mode included), and the
# platform runs as uid 10001, Grafana as uid 472. Run as root, the script gives each file to
# the uid that reads it with mode 0400; otherwise it falls back to 0644 and says so.
#
# Only file names are printed, never values.
set -eu
cd "$(dirname "$0")/secrets"
umask 077

random() { python3 -c 'import secrets, sys; print(sys.argv[1] + secrets.token_urlsafe(32))' "${1:-}"; }

make() {
  name=$1; shift
  if [ -s "$name" ]; then
    echo "kept    deploy/docker/secrets/$name"
  else
    "$@" > "$name.tmp" && mv "$name.tmp" "$name"
    echo "created deploy/docker/secrets/$name"
  fi
}

make admin_token random sbp_
make backup_token random sbp_
make read_token random sbp_
make secret_key random
make repository_key random
make s3_secret_key random
make minio_root_user printf 'minio-admin\n'
make minio_root_password random
make grafana_admin_password random
make postgres_password random
# The platform reads the whole database URL from a secret so the password never sits in
# the environment; it must agree with postgres_password.
make database_url sh -c 'printf "postgres://platform:%s@postgres:5432/platform\n" "$(cat postgres_password)"'

PLATFORM_UID=10001
GRAFANA_UID=472
owner_of() {
  case "$1" in
    grafana_admin_password) echo "$GRAFANA_UID" ;;
    postgres_password|minio_root_user|minio_root_password) echo 0 ;;  # read by root entrypoints
    *) echo "$PLATFORM_UID" ;;
  esac
}
if [ "$(id -u)" -eq 0 ]; then
  for file in *; do
    chown "$(owner_of "$file"):$(owner_of "$file")" "$file"
    chmod 0400 "$file"
  done
else
  chmod 0644 ./*
  echo "not root: secret files are 0644 so the containers can read them; re-run with sudo for 0400 per service" >&2
fi
