import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")

from storage_platform.startup import exit_on_config_error  # noqa: E402

with exit_on_config_error():
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
