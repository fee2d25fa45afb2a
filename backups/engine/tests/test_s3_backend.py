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


class _NoConditionalWrites:
    """An HTTP proxy in front of the session's moto_server that behaves like an S3 server
    without conditional writes (older MinIO and Ceph releases): a PUT carrying
    `If-None-Match` is answered 501 NotImplemented; everything else is forwarded as is."""

    def __init__(self, upstream_port: int):
        import http.client
        import http.server
        import threading

        refused = self.refused = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep the test output clean
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.command == "PUT" and "If-None-Match" in self.headers:
                    refused.append(self.path)
                    answer = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code>'
                              b"<Message>A header you provided implies functionality that is not "
                              b"implemented</Message></Error>")
                    self.send_response(501)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                upstream.request(self.command, self.path, body=body or None, headers=dict(self.headers))
                response = upstream.getresponse()
                content = response.read()
                self.send_response(response.status)
                for header, value in response.getheaders():
                    if header.lower() not in ("content-length", "transfer-encoding", "connection", "date",
                                              "server"):
                        self.send_header(header, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                upstream.close()

            do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_server_without_conditional_writes_gets_a_plain_put_under_the_repository_lock(s3_bucket, caplog):
    """`create` falls back to exists-then-put on a 501, and a repository still initialises
    once: the second initialiser finds the config and refuses (`RepositoryExists`)."""
    from backups.engine.backends.s3 import make_client
    from backups.engine.errors import RepositoryExists
    from backups.engine.repository import Repository

    server = s3_bucket.server
    proxy = _NoConditionalWrites(server.port)
    try:
        client = make_client(endpoint_url=proxy.endpoint_url, region=server.region,
                             access_key_id=server.access_key_id, secret_access_key=server.secret_access_key)
        backend = open_backend(S3Backend(s3_bucket.name, "old-server", client=client), attempts=1)
        assert backend.create("probe", b"first") is True
        assert backend.create("probe", b"second") is False  # exists: not replaced
        assert backend.get("probe") == b"first"
        assert len(proxy.refused) == 2 and "does not support If-None-Match" in caplog.text

        repository = Repository.init(backend, "11" * 32)
        with pytest.raises(RepositoryExists):
            Repository.init(backend, "22" * 32)
        assert Repository.open(backend, "11" * 32).config["id"] == repository.config["id"]
    finally:
        proxy.close()
