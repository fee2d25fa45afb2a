"""Tokens never reach a log line: code does not log them, and the filter masks them anyway."""

import io
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tokens import create_token
from storage_platform.logging import RedactSecretsFilter, redact


@pytest.fixture
def every_log_record(caplog):
    """Capture every record of every logger at DEBUG, including django.request's 4xx lines."""
    caplog.set_level(logging.DEBUG)
    for name in ("django.request", "django.server", "accounts", "storage_platform", "django.db.backends"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.mark.django_db
def test_requests_with_tokens_log_no_token(api, tokens, client, every_log_record):
    expired, expired_plaintext = create_token("expired", "admin", expires_at=timezone.now() - timedelta(days=1))
    created = api("admin").post("/api/v1/tokens", {"name": "new", "role": "read"}, format="json").json()["token"]
    api("admin").get("/api/v1/tokens")
    api("read").delete("/api/v1/tokens/1")  # 403
    api("admin", bearer=True).get("/api/v1/tokens/999999")  # 404
    api("bad").post("/api/v1/tokens", {"name": "x", "role": "admin"}, format="json")  # 401
    client.get("/api/v1/tokens", HTTP_X_API_TOKEN=expired_plaintext)  # 401 token_expired
    api("admin").post("/api/v1/tokens", "{broken", content_type="application/json")  # 400

    logged = "\n".join(f"{record.getMessage()} {record.args!r} {getattr(record, 'request', '')!r}"
                       for record in every_log_record.records)
    assert every_log_record.records, "the requests above should log something (4xx lines at least)"
    for secret in [*tokens.values(), created, expired_plaintext, "sbp_this-token-does-not-exist"]:
        assert secret not in logged


def test_filter_masks_platform_tokens_and_header_values():
    line = "got X-API-TOKEN: sbp_abcdefghijklmnop and Authorization: Bearer hunter2hunter2 ok"
    cleaned = redact(line)
    assert "sbp_abcdefghijklmnop" not in cleaned and "hunter2hunter2" not in cleaned
    assert cleaned.endswith(" ok")


def test_filter_masks_repository_secrets_this_process_handled():
    from storage_platform.logging import remember_secret

    secret = "5e" * 32  # as a key rotation generates it
    remember_secret(secret)
    assert secret not in redact(f"opened with {secret}.")


def test_filter_masks_bootstrap_token_values_in_formatted_records(settings):
    settings.BOOTSTRAP_TOKENS = {"admin": "operator-chosen-admin-value", "backup": None, "read": None}
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting with %s to %s", "operator-chosen-admin-value", "sbp_zzzzzzzzzzzzzzzzzz")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    output = stream.getvalue()
    assert "operator-chosen-admin-value" not in output and "sbp_zzzzzzzzzzzzzzzzzz" not in output
    assert "connecting with [REDACTED]" in output


@pytest.mark.parametrize("line, secret", [
    ("{'HTTP_X_API_TOKEN': 'plain-secret-value'}", "plain-secret-value"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("retrying with bearer s3cr3t-v4lue", "s3cr3t-v4lue"),
])
def test_filter_masks_header_shapes(line, secret):
    assert secret not in redact(line)


@pytest.mark.parametrize("line, secret", [
    ('"GET /api/v1/volumes?token=operator-chosen-value HTTP/1.1" 400', "operator-chosen-value"),
    ('"GET /metrics?page=2&access_token=abcdefgh12345678 HTTP/1.1" 400', "abcdefgh12345678"),
    ('"GET /api/v1/jobs?api_key=k3y-v4lu3;x=1 HTTP/1.1"', "k3y-v4lu3"),
    ('"GET /api/v1/jobs?x=sbp_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo HTTP/1.1"',
     "sbp_Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo"),
])
def test_filter_masks_credentials_in_query_strings(line, secret):
    cleaned = redact(line)
    assert secret not in cleaned and "[REDACTED]" in cleaned
    assert cleaned.startswith('"GET /') and "HTTP/1.1" in cleaned


def test_filter_is_on_gunicorns_access_and_error_logs():
    from gunicorn.config import Config

    from storage_platform.gunicorn_logging import RedactingLogger

    config = Config()
    config.set("accesslog", "-")
    logger = RedactingLogger(config)
    logger.setup(config)  # a configuration reload runs setup again: still one filter each
    for log in (logger.access_log, logger.error_log):
        assert [type(item) for item in log.filters] == [RedactSecretsFilter]
