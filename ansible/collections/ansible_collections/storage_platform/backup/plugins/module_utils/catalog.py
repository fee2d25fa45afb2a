# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading the catalog for automation: which backup to use, RPO status, content checksums.

RPO follows the platform's one definition (docs/metrics.md), the one behind its
``backup_rpo_violation`` metric: a volume violates its RPO when its newest completed backup,
or its creation if it was never backed up, is older than its RPO (``rpo_minutes``, compared to
the second; from ``rpo_hours`` when the platform predates minutes). A volume created a minute
ago is not in violation.

Checksums describe a volume's tree as ``{relative path: digest}`` so that a restore drill
can compare the source with the restored copy: ``sha256:<hex>`` for a file,
``symlink:<target>`` for a symbolic link, ``dir`` for a directory (so empty directories count).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import os
import stat

from ansible_collections.storage_platform.backup.plugins.module_utils.platform_client import (
    API_PREFIX,
    PlatformApiError,
)
from urllib.parse import quote

UTC = datetime.timezone.utc
# Volume.rpo_minutes without an override or a policy.
DEFAULT_RPO_MINUTES = 24 * 60


def parse_timestamp(text):
    """An aware datetime from the API's ISO 8601 text (``Z`` accepted), or None."""
    if not text:
        return None
    value = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def latest_completed_backup(client, volume_id):
    """The newest completed backup of the volume, or None."""
    backups = client.list("%s/backups" % API_PREFIX, {"volume": volume_id, "status": "completed"})
    completed = [backup for backup in backups if backup.get("status") == "completed" and backup.get("completed_at")]
    if not completed:
        return None
    return max(completed, key=lambda backup: parse_timestamp(backup["completed_at"]))


def resolve_backup_id(client, params):
    """The backup a task names: ``params["backup"]``, or the newest completed backup of
    ``params["volume"]``. Raises `PlatformApiError` when there is none."""
    if params.get("backup"):
        return params["backup"]
    volume = client.find_volume(params["volume"])
    if volume is None:
        raise PlatformApiError("volume %s does not exist" % params["volume"], status=404, code="volume_not_found")
    latest = latest_completed_backup(client, volume["id"])
    if latest is None:
        raise PlatformApiError("volume %s has no completed backup" % params["volume"], code="no_completed_backup")
    return latest["id"]


def newest_backup_of(client, volume):
    """The volume's newest completed backup as ``{id, completed_at}``, or None: from the
    volume's own ``last_backup`` field when the API serves it, else one query."""
    if "last_backup" in volume:
        return volume["last_backup"] or None
    return latest_completed_backup(client, volume["id"])


def rpo_minutes_of(volume):
    """The volume's effective RPO in minutes, as the API answers it."""
    if volume.get("rpo_minutes"):
        return volume["rpo_minutes"]
    if volume.get("rpo_hours"):
        return int(round(volume["rpo_hours"] * 60))
    return DEFAULT_RPO_MINUTES


def rpo_status(volume, latest_backup, now=None):
    """``{last_backup_id, last_backup_at, reference, age_hours, age_minutes, rpo_hours,
    rpo_minutes, violation}`` for one volume: ``reference`` is ``last_backup`` or
    ``created_at``, whichever the age counts from (see the module docstring)."""
    now = now or datetime.datetime.now(UTC)
    rpo_minutes = rpo_minutes_of(volume)
    completed_at = parse_timestamp(latest_backup.get("completed_at")) if latest_backup else None
    reference = completed_at or parse_timestamp(volume.get("created_at"))
    age_seconds = (now - reference).total_seconds() if reference else None
    return {"last_backup_id": latest_backup.get("id") if latest_backup else None,
            "last_backup_at": latest_backup.get("completed_at") if latest_backup else None,
            "reference": "last_backup" if completed_at else "created_at",
            "age_hours": round(age_seconds / 3600.0, 3) if age_seconds is not None else None,
            "age_minutes": round(age_seconds / 60.0, 1) if age_seconds is not None else None,
            "rpo_hours": rpo_minutes // 60 if rpo_minutes % 60 == 0 else round(rpo_minutes / 60.0, 4),
            "rpo_minutes": rpo_minutes,
            "violation": age_seconds is None or age_seconds > rpo_minutes * 60}


def backup_age_minutes(latest_backup, now=None):
    """Minutes since the backup completed, or None for no backup."""
    completed_at = parse_timestamp(latest_backup.get("completed_at")) if latest_backup else None
    if completed_at is None:
        return None
    return ((now or datetime.datetime.now(UTC)) - completed_at).total_seconds() / 60.0


def _sha256_stream(chunks):
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def checksums_from_path(root):
    """Checksums of the tree under `root` on this host, never following symlinks."""
    result = {}
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        relative_directory = os.path.relpath(directory, root)
        for name in subdirectories + files:
            full = os.path.join(directory, name)
            relative = name if relative_directory == "." else os.path.join(relative_directory, name)
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                result[relative] = "symlink:" + os.readlink(full)
            elif stat.S_ISDIR(mode):
                result[relative] = "dir"
            elif stat.S_ISREG(mode):
                with open(full, "rb") as handle:
                    result[relative] = _sha256_stream(iter(lambda: handle.read(1 << 20), b""))
    return result


def _entry_kind(entry):
    kind = str(entry.get("type") or "").lower()
    if kind in ("dir", "directory"):
        return "dir"
    if kind in ("symlink", "link"):
        return "symlink"
    return kind or "file"


def checksums_from_api(client, volume_id, directory=""):
    """Checksums of a volume's tree read through the file data plane (no host access needed).

    Uses ``GET /api/v1/volumes/{id}/files/?path=dir`` (paginated entries with ``name``,
    ``type`` = file|dir|symlink|other, ``target`` for symlinks) and downloads each file.
    """
    result = {}
    base = "%s/volumes/%s/files" % (API_PREFIX, volume_id)
    for entry in client.list(base + "/", {"path": directory} if directory else None):
        name = str(entry.get("name", "")).strip("/")
        relative = name if not directory else directory.rstrip("/") + "/" + name
        kind = _entry_kind(entry)
        if kind == "dir":
            result[relative] = "dir"
            result.update(checksums_from_api(client, volume_id, relative))
        elif kind == "symlink":
            result[relative] = "symlink:" + str(entry.get("target") or "")
        elif kind == "file":
            content = client.download(base + "/" + quote(relative))
            result[relative] = _sha256_stream([content or b""])
        else:  # sockets, devices, fifos: record that they exist, there are no bytes to compare
            result[relative] = kind
    return result


def compare_checksums(expected, actual):
    """``{missing, unexpected, different}``: paths only in `expected`, only in `actual`, or unequal."""
    return {
        "missing": sorted(set(expected) - set(actual)),
        "unexpected": sorted(set(actual) - set(expected)),
        "different": sorted(path for path in set(expected) & set(actual) if expected[path] != actual[path]),
    }
