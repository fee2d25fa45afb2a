"""Turn configuration errors at start-up into one clear line on stderr and exit status 2."""

from __future__ import annotations

import contextlib
import sys

from django.core.exceptions import ImproperlyConfigured


@contextlib.contextmanager
def exit_on_config_error():
    try:
        yield
    except ImproperlyConfigured as error:
        print(f"configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
