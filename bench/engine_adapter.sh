# peers.sh adapter for the platform's backup engine (PLUGIN=bench/engine_adapter.sh).
# Runs the engine's own disaster-recovery CLI, exactly as an operator would, from this
# checkout's venv. The key file holds 32 random bytes as hex: the HKDF path (see
# docs/repository-format.md, "Keys"); restic and borg use their passphrase KDFs.
ENGINE_ROOT=${ENGINE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
ENGINE_PY=${ENGINE_PY:-$ENGINE_ROOT/.venv/bin/python}
export ENGINE_ROOT ENGINE_PY

engine_version() { echo "storage-platform engine $(git -C "$ENGINE_ROOT" rev-parse --short HEAD) ($("$ENGINE_PY" --version))"; }
engine_env() {
  export ENGINE_KEY_FILE=$CACHE/engine.key
  mkdir -p "$CACHE"
  [ -s "$ENGINE_KEY_FILE" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ENGINE_KEY_FILE"
}
engine_init()    { cd "$ENGINE_ROOT" && "$ENGINE_PY" -m backups.engine init --repo "$REPO" --key-file "$ENGINE_KEY_FILE"; }
engine_backup()  { cd "$ENGINE_ROOT" && "$ENGINE_PY" -m backups.engine backup --repo "$REPO" --key-file "$ENGINE_KEY_FILE" --tag "$1" "$SRC"; }
engine_restore() { mkdir -p "$2$SRC" && cd "$ENGINE_ROOT" && "$ENGINE_PY" -m backups.engine restore --repo "$REPO" --key-file "$ENGINE_KEY_FILE" latest "$2$SRC"; }
engine_verify()  { cd "$ENGINE_ROOT" && "$ENGINE_PY" -m backups.engine verify --repo "$REPO" --key-file "$ENGINE_KEY_FILE" --read-data; }
