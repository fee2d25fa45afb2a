"""The Django project of the Storage & Backup Platform ("platform" in the brief)."""

# Load the Celery app whenever Django starts, so @shared_task binds to it.
from storage_platform.celery import app as celery_app

__all__ = ("celery_app",)
