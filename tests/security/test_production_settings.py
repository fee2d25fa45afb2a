"""Production settings: `check --deploy` is clean when the HTTPS variables are set, and the
new variables are read (or refused in one line) like every other setting."""

from __future__ import annotations

import pytest

from tests.test_config import BIN, assert_one_line_failure, run

DEPLOY_WARNINGS = ("security.W004", "security.W008", "security.W012", "security.W016")
HTTPS_VARIABLES = {
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",  # without these two, W005 and W021 (see docs/security.md)
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
}


def check_deploy(tmp_path, **variables):
    return run([str(BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
               **variables)


def test_check_deploy_warns_without_the_https_settings(tmp_path):
    result = check_deploy(tmp_path)
    assert result.returncode != 0
    for warning in DEPLOY_WARNINGS:
        assert warning in result.stderr, result.stderr


def test_check_deploy_is_clean_with_the_https_settings(tmp_path):
    result = check_deploy(tmp_path, **HTTPS_VARIABLES)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def settings_value(tmp_path, expression: str, **variables) -> str:
    result = run([str(BIN / "python"), "manage.py", "shell", "--no-imports", "-c",
                  f"from django.conf import settings; print({expression})"], tmp_path, **variables)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_proxy_ssl_header_and_metrics_token_file_are_read(tmp_path):
    token_file = tmp_path / "metrics_token"
    token_file.write_text("metrics-token-from-a-file-0123\n")
    value = settings_value(tmp_path, "settings.SECURE_PROXY_SSL_HEADER, settings.METRICS_TOKEN",
                           SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto", METRICS_TOKEN_FILE=str(token_file))
    assert value == "('HTTP_X_FORWARDED_PROTO', 'https') metrics-token-from-a-file-0123"
    custom = settings_value(tmp_path, "settings.SECURE_PROXY_SSL_HEADER",
                            SECURE_PROXY_SSL_HEADER="X-Forwarded-Scheme: secure")
    assert custom == "('HTTP_X_FORWARDED_SCHEME', 'secure')"


def test_the_failure_counter_is_shared_by_default(tmp_path):
    # Never a per-process cache: the broker's Redis, else a directory every process shares.
    redis = settings_value(tmp_path, "settings.CACHES['default']['BACKEND']",
                           CELERY_BROKER_URL="redis://127.0.0.1:6379/5")
    assert redis == "django.core.cache.backends.redis.RedisCache"
    shared_directory = settings_value(tmp_path, "settings.CACHES['default']['LOCATION']",
                                      CELERY_BROKER_URL="filesystem://")
    assert shared_directory == str(tmp_path.resolve() / "cache")


@pytest.mark.parametrize("variable, value", [
    ("SECURE_PROXY_SSL_HEADER", "X Forwarded Proto"),
    ("SECURE_HSTS_SECONDS", "-1"),
    ("SECURE_SSL_REDIRECT", "sometimes"),
    ("CACHE_URL", "memcached://127.0.0.1:11211"),
    ("AUTH_FAILURE_LIMIT", "0"),
    ("TRUSTED_PROXY_COUNT", "many"),
])
def test_malformed_security_settings_stop_with_one_line(tmp_path, variable, value):
    result = run([str(BIN / "python"), "manage.py", "check"], tmp_path, **{variable: value})
    assert_one_line_failure(result, variable)
