#!/usr/bin/env bash
# `ansible-test sanity` for the collection, offline once prepared:
#
#   scripts/ansible-sanity.sh prime   # once per virtualenv (`make venv` does it): needs PyPI
#   scripts/ansible-sanity.sh run     # ansible-test sanity --local --python X.Y, no network
#
# ansible-test runs most sanity tests in virtual environments of its own, with pinned tools
# (pylint, pycodestyle, yamllint, voluptuous ...), kept in ~/.ansible/test/venv. `prime`
# creates them so that `run` finds them ready; they outlive this checkout, so priming happens
# once per machine and ansible-core version. ansible-test bootstraps pip in them with a
# get-pip.py it downloads from a host outside the package registries;
# scripts/ansible_test_get_pip.py stands in for it (uv, or ensurepip, then the pinned pip from the
# configured index).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(cd "${VENV:-.venv}/bin" && pwd)
COLLECTION=ansible/collections/ansible_collections/storage_platform/backup
export PATH="$BIN:$PATH"
python_version=$("$BIN/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
marker="$HOME/.ansible/test/storage-platform-sanity-primed"

case "${1:-}" in
  prime)
    pip_version=$("$BIN/python" - <<'PY'
import pathlib, re, ansible_test
text = (pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", text).group(1))
PY
)
    mkdir -p "$HOME/.ansible/test/cache"
    cp scripts/ansible_test_get_pip.py "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
    if [ -f "$marker" ] && [ "$(cat "$marker")" = "$("$BIN/ansible-test" --version) python $python_version" ]; then
      exit 0
    fi
    log="$HOME/.ansible/test/storage-platform-prime.log"
    (cd "$COLLECTION" && ansible-test sanity --prime-venvs --local --python "$python_version" >"$log" 2>&1) \
      || { tail -40 "$log" >&2; exit 1; }
    echo "$("$BIN/ansible-test" --version) python $python_version" >"$marker"
    echo "ansible-test sanity environments ready in ~/.ansible/test/venv"
    ;;
  run)
    if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "$("$BIN/ansible-test" --version) python $python_version" ]; then
      echo "ansible-test sanity environments are not prepared for this ansible-core: run scripts/ansible-sanity.sh prime (make venv)" >&2
      exit 3
    fi
    cd "$COLLECTION"
    exec ansible-test sanity --local --python "$python_version" "${@:2}"
    ;;
  *)
    echo "usage: scripts/ansible-sanity.sh prime|run [ansible-test options]" >&2
    exit 64
    ;;
esac
