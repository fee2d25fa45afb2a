from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registered once per process on the default registry, next to django-prometheus's
        # metrics; nothing is queried until the first scrape.
        from monitoring import collectors, heartbeat, signals

        collectors.register_collectors()
        signals.connect()
        heartbeat.connect()
