"""Where the Ansible collection lives, and how tests import it and run its command-line tools."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPOSITORY_ROOT / "ansible"
COLLECTIONS_PATH = ANSIBLE_DIR / "collections"
COLLECTION_DIR = COLLECTIONS_PATH / "ansible_collections" / "storage_platform" / "backup"
MODULES_DIR = COLLECTION_DIR / "plugins" / "modules"
PLAYBOOKS_DIR = ANSIBLE_DIR / "playbooks"
FQCN_PREFIX = "storage_platform.backup."
MODULE_NAMES = sorted(path.stem for path in MODULES_DIR.glob("*.py") if not path.stem.startswith("_"))
BIN_DIR = Path(sys.executable).parent


def import_collection_module(dotted: str):
    """Import `plugins.<dotted>` of the collection the way Ansible's loader names it."""
    if str(COLLECTIONS_PATH) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_PATH))
    return importlib.import_module(f"ansible_collections.storage_platform.backup.plugins.{dotted}")


def ansible_environment(**extra: str) -> dict[str, str]:
    """Environment for ansible-* commands: this collection only, no user config, no cows."""
    environment = dict(os.environ)
    environment.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_NOCOWS": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_LOCAL_TEMP": str(Path(os.environ.get("TMPDIR", "/tmp")) / "ansible-local-ops"),
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "PATH": f"{BIN_DIR}{os.pathsep}{environment.get('PATH', '')}",
    })
    environment.update(extra)
    return environment


def run_ansible_tool(tool: str, *arguments: str, timeout: float = 120, **extra_env: str):
    """Run `tool` (ansible-doc, ansible-playbook...) from this virtualenv; answer the CompletedProcess."""
    command = [str(BIN_DIR / tool), *arguments]
    try:
        return subprocess.run(command, cwd=str(ANSIBLE_DIR), env=ansible_environment(**extra_env),
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        # Show how far the playbook got instead of only "timed out".
        def text(value):
            return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")

        raise AssertionError(f"{tool} timed out after {timeout} s; output so far:\n"
                             f"{text(expired.stdout)}{text(expired.stderr)}") from None
