from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Policy ⇄ django-celery-beat sync signals and the beat entry points (scheduling).
        from backups.scheduling import signals  # noqa: F401
