"""Read the platform's configuration from the environment (12-factor), in one place.

Every setting has an embedded default so that `make run` works on a fresh machine; a value
that is present but malformed raises `ConfigError` whose message is one line naming the
variable. `manage.py`, the Celery app and wsgi/asgi turn that into a one-line message on
stderr and a non-zero exit instead of a traceback.

Secrets (`SECRET_KEY`, tokens, the repository key, S3 keys) may also come from
`<NAME>_FILE`, the path of a file holding the value (Docker/Kubernetes secrets).
"""

from __future__ import annotations

import os
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
