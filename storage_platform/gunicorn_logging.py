"""Gunicorn's logger with the platform's secret redaction (see storage_platform/logging.py).

Gunicorn writes its access and error logs through its own loggers, outside Django's
LOGGING; the access line holds the request line, query string and referrer, where a token
sent in a URL would otherwise land verbatim. gunicorn.conf.py installs this class, so every
gunicorn started from the project (make run, the container, tests) uses it.
"""

from __future__ import annotations

from gunicorn.glogging import Logger

from storage_platform.logging import RedactSecretsFilter


class RedactingLogger(Logger):
    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            # setup() runs again on a configuration reload (SIGHUP): one filter is enough.
            if not any(isinstance(existing, RedactSecretsFilter) for existing in log.filters):
                log.addFilter(RedactSecretsFilter())
