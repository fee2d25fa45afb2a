"""Log filter that keeps secrets out of every log line.

Tokens and keys must never reach a log. Code is written not to log them in the first place;
this filter is the second line of defence: it masks any value of a known secret (the
bootstrap tokens, the repository key and the repository secrets this process generated or
unsealed, S3 keys), anything shaped like an API token of this
platform (`sbp_...`), an `Authorization`/`X-API-TOKEN` header value, and the value of a
credential-named query parameter (`?token=...`; such requests are refused, but the server's
access log still writes their request line).

It is on every handler of Django's logging (API, worker, beat) and on gunicorn's access and
error logs (`storage_platform.gunicorn_logging`, installed by gunicorn.conf.py).
"""

from __future__ import annotations

import logging
import re

_TOKEN_PATTERN = re.compile(r"sbp_[A-Za-z0-9_\-]{8,}")
# `X-API-TOKEN: v`, `Authorization: Bearer v`, `HTTP_AUTHORIZATION': 'Basic v'`, `bearer v`:
# the optional scheme word is kept, the credential after it is masked.
_HEADER_PATTERN = re.compile(
    r"(?i)(x[-_]api[-_]token|authorization|bearer)([\"':=\s]+)((?:bearer|basic|token)\s+)?([^\s\"',}]+)"
)


# Query parameters whose value is a credential (refused by accounts.query_tokens, masked here).
CREDENTIAL_QUERY_PARAMETERS = ("token", "api_token", "access_token", "api_key", "apikey", "x-api-token",
                               "x_api_token", "auth", "bearer")
_QUERY_PATTERN = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(name) for name in CREDENTIAL_QUERY_PARAMETERS) + r")=)[^&;\s\"']*"
)


#: Secrets this process handled that are not settings (repository secrets a key rotation
#: generated or unsealed, backups/repository_secret.py): masked like the settings' secrets.
_runtime_secrets: set[str] = set()


def remember_secret(value: str) -> None:
    """Mask `value` in every later log line of this process."""
    if value and len(value) >= 8:
        _runtime_secrets.add(value)


def _known_secrets() -> list[str]:
    try:
        from django.conf import settings

        values = list(getattr(settings, "BOOTSTRAP_TOKENS", {}).values())
        values += [getattr(settings, name, None) for name in
                   ("REPOSITORY_KEY", "S3_SECRET_ACCESS_KEY", "METRICS_TOKEN", "SECRET_KEY")]
    except Exception:  # settings not configured (engine CLI): the patterns still apply
        return sorted(_runtime_secrets)
    return [value for value in values if value and len(value) >= 8] + sorted(_runtime_secrets)


def redact(text: str) -> str:
    for secret in _known_secrets():
        text = text.replace(secret, "[REDACTED]")
    text = _TOKEN_PATTERN.sub("sbp_[REDACTED]", text)
    text = _QUERY_PATTERN.sub(lambda match: f"{match.group(1)}[REDACTED]", text)
    return _HEADER_PATTERN.sub(
        lambda match: f"{match.group(1)}{match.group(2)}{match.group(3) or ''}[REDACTED]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True

