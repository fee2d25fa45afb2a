import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")

from storage_platform.startup import exit_on_config_error  # noqa: E402

with exit_on_config_error():
    from django.core.asgi import get_asgi_application

    application = get_asgi_application()
