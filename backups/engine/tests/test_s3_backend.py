"""S3-specific behaviour: error mapping, configuration from the environment, cleanup."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from backups.engine.backends import open_backend, parse_location
from backups.engine.backends.retry import RetryingBackend
from backups.engine.backends.s3 import S3Backend, map_boto_error
from backups.engine.errors import (BackendError, BackendUnavailable, ObjectCorrupt,
                                   ObjectNotFound)

pytestmark = pytest.mark.engine


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "from S3"},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("code, status, expected, transient", [
    ("NoSuchKey", 404, ObjectNotFound, False),
    ("404", 404, ObjectNotFound, False),
    ("InvalidRange", 416, ObjectCorrupt, False),
    ("SlowDown", 503, BackendUnavailable, True),
    ("InternalError", 500, BackendUnavailable, True),
    ("TooManyRequests", 429, BackendUnavailable, True),
    ("AccessDenied", 403, BackendError, False),
    ("NoSuchBucket", 404, BackendError, False),
    ("InvalidAccessKeyId", 403, BackendError, False),
])
def test_s3_error_codes_map_to_engine_errors(code, status, expected, transient):
    mapped = map_boto_error(_client_error(code, status), "S3 get s3://b/k")
    assert type(mapped) is expected
    assert mapped.transient is transient


def test_connection_errors_are_transient():
    refused = map_boto_error(EndpointConnectionError(endpoint_url="http://x"), "S3 get")
    timed_out = map_boto_error(ReadTimeoutError(endpoint_url="http://x"), "S3 get")
    assert isinstance(refused, BackendUnavailable) and isinstance(timed_out, BackendUnavailable)


def test_a_missing_bucket_is_a_permanent_clear_error(s3_server):
    store = S3Backend("no-such-bucket-here", "repo", client=s3_server.client())
    with pytest.raises(BackendError) as caught:
        store.get("config")
    assert not caught.value.transient
    assert "bucket does not exist" in caught.value.message
    with pytest.raises(BackendError, match="does not exist"):
        store.check_bucket()


def test_messages_name_the_object_but_never_the_credentials(s3_bucket):
    store = S3Backend(s3_bucket.name, "repo", client=s3_bucket.client)
    with pytest.raises(ObjectNotFound) as caught:
        store.get("snapshots/abc")
    assert f"s3://{s3_bucket.name}/repo/snapshots/abc" in caught.value.message
    assert s3_bucket.server.secret_access_key not in str(caught.value)
    assert s3_bucket.server.access_key_id not in str(caught.value)
    assert s3_bucket.server.secret_access_key not in repr(store)


def test_open_backend_reads_s3_settings_from_the_environment(s3_bucket, monkeypatch):
    for variable, value in s3_bucket.server.environment(s3_bucket.name).items():
        monkeypatch.setenv(variable, value)
    store = open_backend(f"s3://{s3_bucket.name}/from/env")
    assert isinstance(store, RetryingBackend) and isinstance(store.inner, S3Backend)
    store.put("config", b"via environment")
    stored = s3_bucket.client.get_object(Bucket=s3_bucket.name, Key="from/env/config")
    assert stored["Body"].read() == b"via environment"
    store.close()


def test_parse_location_understands_paths_and_s3_urls(tmp_path):
    assert parse_location("s3://bucket") == ("s3", "bucket", "")
    assert parse_location("s3://bucket/a/b/") == ("s3", "bucket", "a/b")
    assert parse_location(str(tmp_path)) == ("local", str(tmp_path), "")
    with pytest.raises(BackendError):
        parse_location("s3:///prefix")


def test_a_failed_multipart_upload_is_aborted_and_leaves_no_object(s3_bucket):
    store = S3Backend(s3_bucket.name, "repo", client=s3_bucket.client,
                      multipart_threshold=1, part_size=5 * 1024 * 1024)
    real_complete = s3_bucket.client.complete_multipart_upload

    def refuse(**arguments):
        raise _client_error("InternalError", 500)

    s3_bucket.client.complete_multipart_upload = refuse
    try:
        with pytest.raises(BackendUnavailable):
            store.put("data/aa/big", b"x" * 100)
    finally:
        s3_bucket.client.complete_multipart_upload = real_complete
    assert not store.exists("data/aa/big")
    assert list(store.list_incomplete_uploads()) == []


def test_unfinished_uploads_can_be_listed_and_aborted(s3_bucket):
    store = S3Backend(s3_bucket.name, "repo", client=s3_bucket.client)
    upload = s3_bucket.client.create_multipart_upload(Bucket=s3_bucket.name,
                                                      Key="repo/data/aa/crashed")
    assert list(store.list_incomplete_uploads()) == [("repo/data/aa/crashed",
                                                      upload["UploadId"])]
    store.abort_upload("repo/data/aa/crashed", upload["UploadId"])
    assert list(store.list_incomplete_uploads()) == []
