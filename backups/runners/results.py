"""Turn engine result objects into the JSON the catalog stores.

The engine returns dataclasses; the catalog stores plain dicts with the field names the API
promises (`files, dirs, bytes_read, bytes_new, bytes_stored, duration_seconds, warnings`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import PurePath

BACKUP_STAT_FIELDS = ("files", "dirs", "bytes_read", "bytes_new", "bytes_stored", "duration_seconds", "warnings")


def to_jsonable(value):
    """A JSON-compatible copy of an engine value (dataclasses, datetimes, paths, sets)."""
    for method in ("public", "to_json"):  # the engine's own public description, when it has one
        if hasattr(value, method) and not isinstance(value, type):
            return to_jsonable(getattr(value, method)())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {item.name: to_jsonable(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (PurePath, bytes)):
        return str(value) if isinstance(value, PurePath) else value.decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "__dict__"):
        return {key: to_jsonable(item) for key, item in vars(value).items() if not key.startswith("_")}
    return str(value)


def _field(source, name, default=None):
    if isinstance(source, dict):
        return source.get(name, default)
    return getattr(source, name, default)


def backup_stats(value) -> dict:
    """The catalog's stats dict from a BackupResult or SnapshotInfo (missing counts are 0)."""
    stats = _field(value, "stats") or value
    summary = dict(stats) if isinstance(stats, dict) else {}
    for name in BACKUP_STAT_FIELDS:
        found = _field(stats, name, None)
        if found is None:
            found = _field(value, name, None)
        if name == "warnings":
            summary[name] = to_jsonable(found) if isinstance(found, (list, tuple)) else (found or 0)
        elif found is not None:
            summary[name] = found
        else:
            summary[name] = 0
    return to_jsonable(summary)
