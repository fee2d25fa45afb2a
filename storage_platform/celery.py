"""The Celery application. Celery carries only job ids; job state lives in the database."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")

app = Celery("storage_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _check_settings(sender, **kwargs):
    # Settings are loaded lazily; load them now so a bad setting stops the worker/beat at
    # start with one line instead of a traceback in the middle of the first task.
    from storage_platform.startup import exit_on_config_error

    with exit_on_config_error():
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - forces the settings module to load
