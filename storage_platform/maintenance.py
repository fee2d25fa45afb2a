"""Maintenance mode for upgrades: while it is on, API mutations answer 503 with Retry-After.

Reads keep working so monitoring and automation can watch the upgrade. The switch is a file
(`MAINTENANCE_FILE`) so that every API process sees it at once without a database write;
`manage.py maintenance on|off` and the Ansible upgrade playbook flip it.
"""

from __future__ import annotations

from django.conf import settings

from storage_platform.errors import error_response

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
RETRY_AFTER_SECONDS = 60


def maintenance_enabled() -> bool:
    return settings.MAINTENANCE_FILE.exists()


class MaintenanceModeMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (request.method not in SAFE_METHODS and request.path.startswith("/api/")
                and maintenance_enabled()):
            response = error_response(
                "maintenance", "The platform is in maintenance mode; retry later.", 503,
                {"retry_after": RETRY_AFTER_SECONDS},
            )
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
        return self.get_response(request)
