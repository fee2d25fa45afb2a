"""The Django project of the Storage & Backup Platform (a package named `platform` would shadow the standard library's)."""

# Load the Celery app whenever Django starts, so @shared_task binds to it.
from storage_platform.celery import app as celery_app

__all__ = ("celery_app",)
