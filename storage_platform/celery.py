"""The Celery application. Celery carries only job ids; job state lives in the database."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")

app = Celery("storage_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def _check_settings(sender, **kwargs):
    # Celery reads Django settings lazily, the first time the CLI or a task touches app.conf;
    # load them here, just before Celery does (on_configure, not on_after_configure, which
    # fires only once loading succeeded), so a bad setting stops the worker/beat with one
    # line instead of a traceback. SystemExit passes through Celery's signal dispatch.
    from storage_platform.startup import exit_on_config_error

    with exit_on_config_error():
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
