"""Turn configuration errors at start-up into one clear line on stderr and exit status 2.

Every entry point loads the settings inside `exit_on_config_error()`: `manage.py`,
wsgi/asgi, the Celery app (on_configure) and gunicorn's master (`gunicorn.conf.py`, so a bad
setting stops gunicorn once instead of its workers failing to boot in an endless loop).
"""

from __future__ import annotations

import contextlib
import sys

from django.core.exceptions import ImproperlyConfigured

CONFIG_ERROR_EXIT_STATUS = 2


@contextlib.contextmanager
def exit_on_config_error():
    try:
        yield
    except ImproperlyConfigured as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT_STATUS) from None


def load_settings_or_exit() -> None:
    """Load Django's settings now; on a bad setting print one line and exit 2."""
    with exit_on_config_error():
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
