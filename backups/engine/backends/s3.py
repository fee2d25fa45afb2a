"""A repository in an S3 bucket (AWS S3, MinIO, Ceph RGW, any S3-compatible store).

Object `<type>/<name>` is the key `<prefix>/<type>/<name>`. Only the standard S3 API is used:
PutObject / multipart upload, GetObject with `Range`, HeadObject, DeleteObject and
ListObjectsV2 with continuation tokens.

Error mapping (the contract of `backend.py`):

* 404, `NoSuchKey`, `NotFound`                       -> `ObjectNotFound`
* 416 `InvalidRange`, a body shorter than asked       -> `ObjectCorrupt`
* connection/timeout errors, any 5xx, `SlowDown`,
  throttling, `RequestTimeout`                         -> `BackendUnavailable` (transient)
* everything else (403 `AccessDenied`, `NoSuchBucket`,
  bad credentials)                                     -> `BackendError` (permanent)

botocore's own retries are switched off on clients this class builds (one attempt per call):
retrying is `RetryingBackend`'s job, and two nested retry loops would multiply the wait on an
outage. A client passed in (django-storages' client) keeps its configuration.

Messages never include credentials: they name the bucket, the key and the S3 error code.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator

from ..backend import Backend, retention_arguments
from ..errors import (BackendError, BackendUnavailable, ObjectCorrupt, ObjectLocked,
                      ObjectLockUnsupported, ObjectNotFound)
from ..objectlock import Retention, is_locked

log = logging.getLogger(__name__)

MiB = 1024 * 1024
#: S3 refuses parts smaller than 5 MiB (except the last one).
MINIMUM_PART_SIZE = 5 * MiB
#: S3 allows at most 10,000 parts per upload.
MAXIMUM_PARTS = 10_000

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
#: GetObjectLockConfiguration's answers for "this bucket has no Object Lock" (AWS and MinIO,
#: Ceph RGW, a server without the API at all).
_NO_LOCK_CONFIGURATION = {"ObjectLockConfigurationNotFoundError",
                          "NoSuchObjectLockConfiguration", "NotImplemented"}
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout",
                    "RequestTimeoutException", "InternalError", "ServiceUnavailable",
                    "TooManyRequestsException", "RequestLimitExceeded",
                    "ProvisionedThroughputExceededException", "BandwidthLimitExceeded",
                    "ServerBusy", "503", "500", "502", "504"}


def map_boto_error(error: Exception, what: str) -> BackendError:
    """Translate a boto3/botocore exception into the engine's storage errors."""
    from botocore import exceptions as boto_errors

    if isinstance(error, boto_errors.ClientError):
        details = error.response.get("Error", {}) or {}
        code = str(details.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        detail = {"s3_code": code, "http_status": status}
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return ObjectNotFound(f"{what}: not found", detail=detail)
        if code == "InvalidRange" or status == 416:
            return ObjectCorrupt(f"{what}: requested range is past the end of the object",
                                 detail=detail)
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return BackendUnavailable(f"{what}: S3 failed temporarily ({code or status})",
                                      detail=detail)
        if code == "NoSuchBucket":
            return BackendError(f"{what}: the bucket does not exist", detail=detail)
        return BackendError(f"{what}: S3 refused the request ({code or status})", detail=detail)
    if isinstance(error, (boto_errors.ConnectionError, boto_errors.HTTPClientError,
                          boto_errors.IncompleteReadError, ConnectionError, TimeoutError)):
        return BackendUnavailable(f"{what}: S3 is unreachable ({type(error).__name__})")
    if isinstance(error, boto_errors.NoCredentialsError):
        return BackendError(f"{what}: no S3 credentials configured")
    if isinstance(error, boto_errors.BotoCoreError):
        return BackendError(f"{what}: S3 client error ({type(error).__name__})")
    return BackendError(f"{what}: {type(error).__name__}")


def make_client(*, endpoint_url: str | None = None, region: str | None = None,
                access_key_id: str | None = None, secret_access_key: str | None = None,
                connect_timeout: float = 5.0, read_timeout: float = 60.0,
                max_pool_connections: int = 16, addressing_style: str | None = None):
    """Build a boto3 S3 client with the engine's defaults (one attempt per call, timeouts).

    Path-style addressing is used when an endpoint is given (MinIO, Ceph and moto rarely have
    wildcard DNS for virtual-host buckets); AWS itself keeps boto3's default.
    """
    import boto3
    from botocore.config import Config

    style = addressing_style or ("path" if endpoint_url else "auto")
    config = Config(
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
        s3={"addressing_style": style},
    )
    # A private session: boto3's default session is not thread-safe to create clients from.
    session = boto3.session.Session()
    return session.client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=region or None,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        config=config,
    )


class S3Backend(Backend):
    """Objects in `bucket` under `prefix`; thread-safe (boto3 clients are)."""

    def __init__(self, bucket: str, prefix: str = "", client=None, *,
                 endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 multipart_threshold: int = 32 * MiB, part_size: int = 16 * MiB,
                 connect_timeout: float = 5.0, read_timeout: float = 60.0):
        if not bucket:
            raise BackendError("no S3 bucket given")
        if part_size < MINIMUM_PART_SIZE:
            raise BackendError(f"S3 part size must be at least {MINIMUM_PART_SIZE} bytes")
        if multipart_threshold < 1:
            raise BackendError("multipart threshold must be positive")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._key_prefix = f"{self.prefix}/" if self.prefix else ""
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._owns_client = client is None
        if client is None:
            client = make_client(endpoint_url=endpoint_url, region=region,
                                 access_key_id=access_key_id,
                                 secret_access_key=secret_access_key,
                                 connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.client = client
        self._lock_enabled: bool | None = None  # learned on first use, see object_lock_enabled
        self._default_retention: dict | None = None  # the bucket's default rule, if it has one
        endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or "aws"
        self.location = f"s3://{bucket}/{self.prefix} ({endpoint})"

    # -- helpers --------------------------------------------------------------------------
    def _key(self, name: str) -> str:
        if not name or name.startswith("/") or "\x00" in name:
            raise BackendError(f"invalid object name {name!r}")
        if any(part in ("", ".", "..") for part in name.split("/")):
            raise BackendError(f"invalid object name {name!r}")
        return self._key_prefix + name

    def _what(self, operation: str, name: str) -> str:
        return f"S3 {operation} s3://{self.bucket}/{self._key_prefix}{name}"

    # -- contract -------------------------------------------------------------------------
    @staticmethod
    def _lock_arguments(retention: Retention | None) -> dict:
        if retention is None:
            return {}
        return {"ObjectLockMode": retention.mode, "ObjectLockRetainUntilDate": retention.until,
                "ChecksumAlgorithm": "CRC32"}

    def put(self, name: str, data: bytes, retention: Retention | None = None) -> None:
        key = self._key(name)
        if len(data) >= self.multipart_threshold:
            self._put_multipart(name, key, data)
            if retention is not None:
                self.extend_retention(name, retention)
            return
        try:
            # An S3 PUT is atomic: readers see the old object or the whole new one.
            body = data if isinstance(data, bytes) else bytes(data)  # no copy of a 16 MiB pack
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                   **self._lock_arguments(retention))
        except Exception as error:
            raise self._map_put_error(error, name, retention) from error

    def put_spool(self, name: str, spool, retention: Retention | None = None) -> None:
        if spool.size >= self.multipart_threshold:
            # rare (a pack larger than the threshold): read back, multipart
            super().put_spool(name, spool, **retention_arguments(retention))
            return
        try:
            # boto3 streams the file (and seeks back itself when it retries).
            self.client.put_object(Bucket=self.bucket, Key=self._key(name), Body=spool.rewind(),
                                   **self._lock_arguments(retention))
        except Exception as error:
            raise self._map_put_error(error, name, retention) from error

    def _map_put_error(self, error: Exception, name: str, retention) -> BackendError:
        mapped = map_boto_error(error, self._what("put", name))
        if retention is not None and mapped.detail.get("s3_code") == "InvalidRequest":
            # "Bucket is missing ObjectLockConfiguration" and the like: say what is wrong.
            self.check_object_lock()
        return mapped

    def create(self, name: str, data: bytes) -> bool:
        key = self._key(name)
        try:
            # S3 (since 2024), MinIO and Ceph RGW refuse the write with 412 when the key
            # exists. A server that ignores the header overwrites instead: the repository
            # also holds its exclusive lock and reads the object back, see Repository.init.
            self.client.put_object(Bucket=self.bucket, Key=key, Body=bytes(data),
                                   IfNoneMatch="*")
        except Exception as error:
            mapped = map_boto_error(error, self._what("create", name))
            if mapped.detail.get("http_status") == 412 or \
                    mapped.detail.get("s3_code") == "PreconditionFailed":
                return False
            if mapped.detail.get("http_status") == 501 or \
                    mapped.detail.get("s3_code") == "NotImplemented":
                # An S3 server without conditional writes: a plain put, under the
                # repository's exclusive lock and followed by its read-back (see
                # Repository.init), which is what keeps the race out on such servers.
                log.warning("%s: the server does not support If-None-Match; relying on the "
                            "repository lock", self._what("create", name))
                if self.exists(name):
                    return False
                self.put(name, data)
                return True
            if mapped.detail.get("http_status") == 409:
                # ConditionalRequestConflict: another conditional write of this key is in
                # flight; retried, it answers 412 or succeeds.
                raise BackendUnavailable(mapped.message, detail=mapped.detail) from error
            raise mapped from error
        return True

    def _put_multipart(self, name: str, key: str, data: bytes) -> None:
        # The object appears only at CompleteMultipartUpload, so a crash or an error midway
        # leaves no partial object (only an upload to abort, which we try to do at once;
        # a bucket lifecycle rule "abort incomplete multipart uploads" catches the rest).
        part_size = max(self.part_size, -(-len(data) // MAXIMUM_PARTS))
        what = self._what("multipart put", name)
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket,
                                                            Key=key)["UploadId"]
        except Exception as error:
            raise map_boto_error(error, what) from error
        try:
            parts = []
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), part_size), start=1):
                response = self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    Body=bytes(view[start:start + part_size]))
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key,
                                                  UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException as error:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key,
                                                   UploadId=upload_id)
            except Exception:
                log.info("could not abort multipart upload of %s; a lifecycle rule or prune "
                         "will clean it up", name)
            if isinstance(error, Exception):
                raise map_boto_error(error, what) from error
            raise

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        key = self._key(name)
        if offset < 0 or (length is not None and length < 0):
            raise BackendError(f"invalid range {offset}+{length} for {name}")
        what = self._what("get", name)
        if length == 0:
            # An empty Range is not expressible; check the object exists and is long enough.
            if self.size(name) < offset:
                raise ObjectCorrupt(f"{what}: object is shorter than offset {offset}")
            return b""
        arguments = {"Bucket": self.bucket, "Key": key}
        if length is not None:
            arguments["Range"] = f"bytes={offset}-{offset + length - 1}"
        elif offset:
            arguments["Range"] = f"bytes={offset}-"
        try:
            response = self.client.get_object(**arguments)
            data = response["Body"].read()
        except Exception as error:
            mapped = map_boto_error(error, what)
            if isinstance(mapped, ObjectCorrupt) and length is None:
                # "bytes=N-" past the end of an object that is exactly N long is an empty
                # read, not damage; anything further is.
                if self.size(name) == offset:
                    return b""
            raise mapped from error
        if length is not None and len(data) != length:
            raise ObjectCorrupt(f"{what}: short read: wanted {length} bytes at {offset}, "
                                f"got {len(data)}")
        return data

    def list(self, prefix: str = "") -> Iterator[str]:
        # ListObjectsV2 returns at most 1,000 keys per page; the paginator follows the
        # continuation tokens, so every key is listed exactly once.
        paginator = self.client.get_paginator("list_objects_v2")
        strip = len(self._key_prefix)
        try:
            for page in paginator.paginate(Bucket=self.bucket,
                                           Prefix=self._key_prefix + prefix):
                for entry in page.get("Contents", ()):
                    key = entry["Key"]
                    if key.endswith("/"):
                        continue  # "directory" placeholder created by some tools
                    yield key[strip:]
        except Exception as error:
            raise map_boto_error(error, self._what("list", prefix or "")) from error

    def delete(self, name: str) -> None:
        if self.object_lock_enabled():
            try:
                retention = self.retention(name)
            except ObjectNotFound:
                return
            if is_locked(retention):
                raise ObjectLocked(f"{self._what('delete', name)}: locked ({retention.mode}) "
                                   f"until {retention.until.isoformat()}",
                                   detail={"locked_until": retention.until.isoformat(),
                                           "mode": retention.mode})
        # DeleteObject succeeds on a missing key, which is the contract.
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as error:
            mapped = map_boto_error(error, self._what("delete", name))
            if isinstance(mapped, ObjectNotFound):
                return
            raise mapped from error

    def _head(self, name: str) -> dict:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except Exception as error:
            raise map_boto_error(error, self._what("head", name)) from error

    def exists(self, name: str) -> bool:
        try:
            self._head(name)
        except ObjectNotFound:
            return False
        return True

    def size(self, name: str) -> int:
        return int(self._head(name)["ContentLength"])

    # -- object lock ----------------------------------------------------------------------
    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once, then remembered).

        A credential that may not read the bucket's lock configuration (AccessDenied) is
        answered True: deletes then read each object's retention first, which costs a request
        but never hides a locked object behind a delete marker."""
        if self._lock_enabled is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
                configuration = answer.get("ObjectLockConfiguration") or {}
                self._lock_enabled = configuration.get("ObjectLockEnabled") == "Enabled"
                self._default_retention = (configuration.get("Rule") or {}).get("DefaultRetention") or None
            except Exception as error:
                mapped = map_boto_error(error, f"S3 object lock configuration of {self.bucket}")
                code = mapped.detail.get("s3_code")
                if code in _NO_LOCK_CONFIGURATION:
                    self._lock_enabled = False
                elif code == "AccessDenied":
                    log.warning("%s; assuming Object Lock is enabled", mapped.message)
                    self._lock_enabled = True  # asked once: every lock taken would ask again
                else:
                    raise mapped from error
        return self._lock_enabled

    def check_lockable_repository(self) -> None:
        """Refuse a bucket with a *default* Object Lock retention: S3 would lock every object
        written, the repository's `locks/` objects included, which must be deleted when a job
        ends; the first lock taken would then block the repository for the rule's days (jobs
        failing with `repository_locked`, retried in vain). The engine locks backups per
        object instead (docs/storage-backends.md, "S3 Object Lock")."""
        if not self.object_lock_enabled() or not self._default_retention:
            return
        rule = self._default_retention
        period = f"{rule.get('Days')} days" if rule.get("Days") else f"{rule.get('Years')} years"
        raise BackendError(
            f"S3 bucket {self.bucket} has a default Object Lock retention ({rule.get('Mode')}, {period}): "
            "it would lock the repository's own lock objects, which must stay deletable. Remove the "
            "bucket's default retention rule; lock backups with a policy's lock_mode and lock_days",
            detail={"bucket": self.bucket, "code": "default_retention_on_bucket"})

    def check_object_lock(self) -> None:
        if not self.object_lock_enabled():
            raise ObjectLockUnsupported(
                f"S3 bucket {self.bucket} does not have Object Lock enabled (create the bucket "
                "with Object Lock enabled, or enable it on the versioned bucket)",
                detail={"bucket": self.bucket})

    def retention(self, name: str) -> Retention | None:
        head = self._head(name)
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        if not mode or not isinstance(until, datetime.datetime):
            return None
        return Retention(str(mode).upper(), until)

    def extend_retention(self, name: str, retention: Retention) -> None:
        current = self.retention(name)
        if current is not None and current.covers(retention):
            return  # never shorten; S3 would refuse for COMPLIANCE and we never bypass
        try:
            self.client.put_object_retention(
                Bucket=self.bucket, Key=self._key(name),
                Retention={"Mode": retention.mode, "RetainUntilDate": retention.until})
        except Exception as error:
            mapped = map_boto_error(error, self._what("extend retention", name))
            if mapped.detail.get("s3_code") == "InvalidRequest":
                self.check_object_lock()
            raise mapped from error

    # -- extras ---------------------------------------------------------------------------
    def list_incomplete_uploads(self, min_age: float = 0.0) -> Iterator[tuple[str, str]]:
        """(key, upload id) of unfinished multipart uploads under the prefix, started at
        least `min_age` seconds ago (a young one may still be in progress)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        now = datetime.datetime.now(datetime.timezone.utc)
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key_prefix):
                for upload in page.get("Uploads", ()):
                    started = upload.get("Initiated")
                    if (min_age and isinstance(started, datetime.datetime)
                            and (now - started).total_seconds() < min_age):
                        continue
                    yield upload["Key"], upload["UploadId"]
        except Exception as error:
            raise map_boto_error(error, self._what("list uploads", "")) from error

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Abort one unfinished multipart upload (frees the storage its parts hold)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except Exception as error:
            mapped = map_boto_error(error, self._what("abort upload", key))
            if not isinstance(mapped, ObjectNotFound):
                raise mapped from error

    def check_bucket(self) -> None:
        """Raise a `BackendError` unless the bucket is reachable with these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as error:
            mapped = map_boto_error(error, f"S3 bucket {self.bucket}")
            if isinstance(mapped, ObjectNotFound):
                raise BackendError(f"S3 bucket {self.bucket} does not exist") from error
            raise mapped from error

    def close(self) -> None:
        if self._owns_client:
            try:
                self.client.close()
            except Exception:
                pass

    def __repr__(self) -> str:
        return f"S3Backend({self.location!r})"
