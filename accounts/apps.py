from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sync_bootstrap_tokens(sender, using="default", **kwargs):
    from accounts.bootstrap import sync_bootstrap_tokens

    sync_bootstrap_tokens()


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import schema  # noqa: F401 - registers the OpenAPI auth description

        # After `migrate` the tables exist: the safe moment to upsert the environment tokens.
        post_migrate.connect(_sync_bootstrap_tokens, sender=self, dispatch_uid="accounts.bootstrap_tokens")
