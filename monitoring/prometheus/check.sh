#!/usr/bin/env bash
# Check the Prometheus configuration, the alert rules and the rules' unit tests with promtool.
# Called by scripts/test.sh (make test). Exits non-zero on any failure. Without promtool the
# checks are skipped locally but fail in CI (CI=true), so a green CI run means they ran.
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v promtool >/dev/null 2>&1; then
  case "${CI:-}" in
    1|true|TRUE|yes)
      echo "promtool is missing (install Debian's prometheus package); CI=true, failing" >&2
      exit 1 ;;
    *)
      echo "promtool is missing: skipping the Prometheus checks (apt-get install prometheus)" >&2
      exit 0 ;;
  esac
fi

status=0
echo "-- promtool check config prometheus.yml"
promtool check config prometheus.yml || status=1
echo "-- promtool check rules rules/*.yml"
promtool check rules rules/*.yml || status=1
echo "-- promtool test rules tests/*.yml"
promtool test rules tests/*.yml || status=1
if command -v amtool >/dev/null 2>&1; then
  echo "-- amtool check-config ../alertmanager/alertmanager.yml"
  amtool check-config ../alertmanager/alertmanager.yml || status=1
fi
exit $status
