"""Storage backends and `open_backend`, the one way the engine turns a location into one.

`open_backend("/srv/repo")` or `open_backend("s3://bucket/prefix")` returns a backend wrapped
in `RetryingBackend`, so callers see transient failures only after the retries ran out.
With `upload_limit` / `download_limit` (bytes per second) it is also rate limited
(`RateLimitedBackend`, inside the retries so a retried put is paced again).
"""

from __future__ import annotations

import os

from ..backend import Backend
from ..errors import BackendError
from .local import LocalBackend
from .retry import DEFAULT_ATTEMPTS, DEFAULT_BASE_DELAY, DEFAULT_MAX_DELAY, RetryingBackend
from .throttle import RateLimitedBackend

__all__ = ["Backend", "LocalBackend", "S3Backend", "RetryingBackend", "RateLimitedBackend",
           "open_backend", "parse_location"]


def __getattr__(name):
    # boto3 costs ~0.3 s to import; only S3 users pay for it.
    if name == "S3Backend":
        from .s3 import S3Backend

        return S3Backend
    raise AttributeError(name)


def parse_location(url_or_path: str) -> tuple[str, str, str]:
    """Split a repository location into (`"local"`, path, "") or (`"s3"`, bucket, prefix).

    Accepted: a path, `file:///path`, `s3://bucket` and `s3://bucket/some/prefix`.
    """
    location = os.fspath(url_or_path)
    if not location:
        raise BackendError("empty repository location")
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise BackendError(f"no bucket in repository location {location!r}")
        return "s3", bucket, prefix.strip("/")
    if location.startswith("file://"):
        location = location[len("file://"):]
    elif "://" in location:
        scheme = location.split("://", 1)[0]
        raise BackendError(f"unsupported repository location scheme {scheme!r} "
                           "(use a directory path or s3://bucket/prefix)")
    return "local", os.path.abspath(os.path.expanduser(location)), ""


def open_backend(url_or_path, *, retry: bool = True, attempts: int = DEFAULT_ATTEMPTS, base_delay: float = DEFAULT_BASE_DELAY,
                 max_delay: float = DEFAULT_MAX_DELAY, upload_limit: float | None = None,
                 download_limit: float | None = None, **options) -> Backend:
    """Open the backend for a location (see `parse_location`), wrapped in `RetryingBackend`.

    For S3, `options` go to `S3Backend` (`client`, `endpoint_url`, `region`, `access_key_id`,
    `secret_access_key`, `multipart_threshold`, ...). Missing S3 settings are read from the
    usual environment: `S3_ENDPOINT_URL` (or `AWS_ENDPOINT_URL`), `S3_REGION`,
    `S3_ACCESS_KEY_ID`/`AWS_ACCESS_KEY_ID`, `S3_SECRET_ACCESS_KEY`/`AWS_SECRET_ACCESS_KEY`.
    For a local path, `options` go to `LocalBackend` (`fsync`).
    An already-built `Backend` passes through (wrapped if `retry` and not wrapped yet).
    `upload_limit` / `download_limit` are bytes per second (None or 0: unlimited).
    """
    if isinstance(url_or_path, Backend):
        backend = url_or_path
    else:
        kind, first, second = parse_location(url_or_path)
        if kind == "s3":
            from .s3 import S3Backend

            backend = S3Backend(first, second, **_s3_options_from_environment(options))
        else:
            backend = LocalBackend(first, **options)
    already_retrying = isinstance(backend, RetryingBackend)
    if upload_limit or download_limit:
        backend = RateLimitedBackend(backend, upload_limit, download_limit)
    if retry and not already_retrying:
        backend = RetryingBackend(backend, attempts=attempts, base_delay=base_delay,
                                  max_delay=max_delay)
    return backend


def _s3_options_from_environment(options: dict) -> dict:
    environment = os.environ
    merged = dict(options)
    if merged.get("client") is None:
        merged.setdefault("endpoint_url", environment.get("S3_ENDPOINT_URL")
                          or environment.get("AWS_ENDPOINT_URL") or None)
        merged.setdefault("region", environment.get("S3_REGION")
                          or environment.get("AWS_DEFAULT_REGION") or None)
        merged.setdefault("access_key_id", environment.get("S3_ACCESS_KEY_ID")
                          or environment.get("AWS_ACCESS_KEY_ID") or None)
        merged.setdefault("secret_access_key", environment.get("S3_SECRET_ACCESS_KEY")
                          or environment.get("AWS_SECRET_ACCESS_KEY") or None)
    return merged
