"""Read the platform's configuration from the environment (12-factor), in one place.

Every setting has an embedded default so that `make run` works on a fresh machine; a value
that is present but malformed raises `ConfigError` whose message is one line naming the
variable. `manage.py`, the Celery app and wsgi/asgi turn that into a one-line message on
stderr and a non-zero exit instead of a traceback.

Secrets (`SECRET_KEY`, tokens, the repository key, S3 keys) may also come from
`<NAME>_FILE`, the path of a file holding the value (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured


class ConfigError(ImproperlyConfigured):
    """A setting in the environment is missing or malformed; the message names it."""


def env_str(name: str, default: str | None = None, environ=os.environ) -> str | None:
    """The value of `name`, or of the file named by `name_FILE`, or `default`."""
    value = environ.get(name)
    file_name = environ.get(f"{name}_FILE")
    if value is not None and file_name:
        raise ConfigError(f"{name} and {name}_FILE are both set; set only one")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ConfigError(f"{name}_FILE={file_name} cannot be read: {error.strerror}") from None
    if value is None or value == "":
        return default
    return value


def env_bool(name: str, default: bool, environ=os.environ) -> bool:
    value = environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None,
            environ=os.environ) -> int:
    value = environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum or maximum is not None and number > maximum:
        raise ConfigError(f"{name}={number} is out of range [{minimum}, {maximum}]")
    return number


def env_list(name: str, default: list[str], environ=os.environ) -> list[str]:
    value = environ.get(name)
    if value is None or value.strip() == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_mapping(name: str, environ=os.environ) -> dict[str, str]:
    """`key=value,key=value` as a dict (e.g. `VOLUME_POOLS=fast=/mnt/nvme,bulk=/mnt/hdd`)."""
    mapping = {}
    for item in env_list(name, [], environ):
        key, separator, value = item.partition("=")
        if not separator or not key.strip() or not value.strip():
            raise ConfigError(f"{name}: {item!r} is not of the form name=value")
        if key.strip() in mapping:
            raise ConfigError(f"{name}: {key.strip()!r} is given twice")
        mapping[key.strip()] = value.strip()
    return mapping


def env_url(name: str, default: str, schemes: tuple[str, ...], environ=os.environ) -> str:
    value = env_str(name, default, environ)
    parsed = urlparse(value)
    if parsed.scheme not in schemes:
        raise ConfigError(f"{name} must be a URL with scheme {' or '.join(schemes)}, got {parsed.scheme or 'none'!r}")
    return value


def persistent_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret kept in `path` (created 0600 on first use).

    Used only for embedded defaults (secret key, repository key, bootstrap tokens of `make
    run`), so that a single-host installation survives restarts without any configuration.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    # Write to a private temporary name, then link it into place: when the API, the worker
    # and beat start together, exactly one value wins and everyone reads that one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return path.read_text().strip()


#: A replication target's name: a DNS label, as volume and pool names (it labels metrics).
REPLICATION_TARGET_NAME = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
_REPLICATION_TARGET_FIELDS = ("location", "endpoint_url", "region", "access_key_id", "secret_access_key",
                              "key_file", "lock_mode", "lock_days")
#: S3 Object Lock of a replica: the modes and the longest retention (the engine's
#: `objectlock.MODES` and `objectlock.MAX_DAYS`, as for a policy's lock).
_REPLICA_LOCK_MODES = ("governance", "compliance")
_REPLICA_LOCK_MAX_DAYS = 3650


def replication_targets(environ=os.environ) -> dict[str, dict]:
    """The replication targets from `REPLICATION_TARGETS` (a JSON object) and/or
    `REPLICATION_TARGETS_FILE` (a file holding the same JSON, for secrets), merged.

    Each value: `{"location": "/path" | "s3://bucket/prefix", "endpoint_url", "region",
    "access_key_id", "secret_access_key", "key_file", "lock_mode", "lock_days"}`, only
    `location` required. The result maps name -> the same keys, with `kind` (`local` | `s3`)
    added, a local location made absolute, `key` holding the secret read from `key_file`
    (None without one), and `lock_mode` (`governance` | `compliance`, or None) with
    `lock_days` (1..3650, or None): the S3 Object Lock every copy into the replica gets.
    A name given in both sources, an unknown field, an unreadable key file or a lock that is
    half given, out of range or on a directory target is a `ConfigError`.
    """
    sources = []
    inline = environ.get("REPLICATION_TARGETS", "").strip()
    if inline:
        sources.append(("REPLICATION_TARGETS", inline))
    file_name = environ.get("REPLICATION_TARGETS_FILE", "").strip()
    if file_name:
        try:
            sources.append((f"REPLICATION_TARGETS_FILE={file_name}", Path(file_name).read_text()))
        except OSError as error:
            raise ConfigError(f"REPLICATION_TARGETS_FILE={file_name} cannot be read: {error.strerror}") from None
    targets: dict[str, dict] = {}
    for origin, text in sources:
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ConfigError(f"{origin}: not valid JSON ({error.msg} at line {error.lineno})") from None
        if not isinstance(document, dict):
            raise ConfigError(f"{origin}: must be a JSON object of name -> target")
        for name, spec in document.items():
            if name in targets:
                raise ConfigError(f"{origin}: replication target {name!r} is given twice")
            targets[name] = _replication_target(origin, name, spec)
    return targets


def _replica_lock(where: str, kind: str, mode, days) -> dict:
    """`lock_mode` and `lock_days` of a target: both or neither, on S3 only."""
    if mode in (None, "") and days is None:
        return {"lock_mode": None, "lock_days": None}
    if mode in (None, "") or days is None:
        raise ConfigError(f"{where}: lock_mode and lock_days go together: give both "
                          "(e.g. \"governance\" and 30) or neither")
    if str(mode).lower() not in _REPLICA_LOCK_MODES:
        raise ConfigError(f"{where}: lock_mode must be one of {', '.join(_REPLICA_LOCK_MODES)}, not {mode!r}")
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= _REPLICA_LOCK_MAX_DAYS:
        raise ConfigError(f"{where}: lock_days must be a whole number from 1 to {_REPLICA_LOCK_MAX_DAYS}")
    if kind != "s3":
        raise ConfigError(f"{where}: lock_mode and lock_days need an s3:// location (S3 Object Lock); "
                          "a directory cannot lock its files")
    return {"lock_mode": str(mode).lower(), "lock_days": days}


def _replication_target(origin: str, name, spec) -> dict:
    where = f"{origin}: replication target {name!r}"
    if not isinstance(name, str) or not REPLICATION_TARGET_NAME.match(name):
        raise ConfigError(f"{where}: a name is lowercase letters, digits and '-' (at most 63)")
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: must be an object with at least \"location\"")
    unknown = sorted(set(spec) - set(_REPLICATION_TARGET_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; "
                          f"use {', '.join(_REPLICATION_TARGET_FIELDS)}")
    for field_name, value in spec.items():
        if field_name != "lock_days" and value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {field_name} must be a string")
    location = (spec.get("location") or "").strip()
    if not location:
        raise ConfigError(f"{where}: \"location\" is required (a directory or s3://bucket/prefix)")
    target = {field_name: (spec.get(field_name) or None) for field_name in _REPLICATION_TARGET_FIELDS}
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise ConfigError(f"{where}: no bucket in {location!r}")
        target.update(kind="s3", location=f"s3://{bucket}/{prefix.strip('/')}".rstrip("/"))
    elif "://" in location and not location.startswith("file://"):
        raise ConfigError(f"{where}: unsupported location {location!r} (a directory or s3://bucket/prefix)")
    else:
        path = location[len("file://"):] if location.startswith("file://") else location
        if not os.path.isabs(os.path.expanduser(path)):
            raise ConfigError(f"{where}: a directory location must be an absolute path, got {location!r}")
        target.update(kind="local", location=str(Path(path).expanduser().resolve()))
        for field_name in ("endpoint_url", "region", "access_key_id", "secret_access_key"):
            if target[field_name]:
                raise ConfigError(f"{where}: {field_name} applies to s3:// locations only")
    if bool(target["access_key_id"]) != bool(target["secret_access_key"]):
        raise ConfigError(f"{where}: set both access_key_id and secret_access_key, or neither")
    if target["endpoint_url"] and urlparse(target["endpoint_url"]).scheme not in ("http", "https"):
        raise ConfigError(f"{where}: endpoint_url must be an http(s) URL")
    target.update(_replica_lock(where, target["kind"], spec.get("lock_mode"), spec.get("lock_days")))
    target["key"] = None
    if target["key_file"]:
        try:
            target["key"] = Path(target["key_file"]).read_text().strip()
        except OSError as error:
            raise ConfigError(f"{where}: key_file {target['key_file']} cannot be read: {error.strerror}") from None
        if not target["key"]:
            raise ConfigError(f"{where}: key_file {target['key_file']} is empty")
    return target
