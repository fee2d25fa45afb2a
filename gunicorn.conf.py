"""Gunicorn configuration, read by any `gunicorn` started in the project directory.

It loads the Django settings in the master process before any worker is forked: a malformed
setting then stops gunicorn with one line and exit status 2, instead of every worker failing
to boot and the master respawning them forever. Its logger masks secrets (tokens in URLs,
credential headers) in the access and error logs.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")

from storage_platform.startup import load_settings_or_exit  # noqa: E402

load_settings_or_exit()

wsgi_app = "storage_platform.wsgi:application"
# The master imports the application once and forks the workers from it: a worker starts in
# milliseconds instead of importing Django again, and the workers share that memory. Nothing
# opens a database, broker or S3 connection at import (they open on first use, in the worker),
# so no connection is shared across a fork. New code needs a restart, not a HUP.
preload_app = True
logger_class = "storage_platform.gunicorn_logging.RedactingLogger"

# Gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl), so two
# instances on one host (a test run next to `make run`) would fight over it; nothing uses it.
control_socket_disable = True
