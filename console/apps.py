"""The operator console: the overview on the admin index, the site's front page, and the
static files (styles, the small progress poller) the admin pages of the other apps use."""

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        from django.contrib import admin

        admin.site.site_header = "Storage & Backup Platform"
        admin.site.site_title = "Storage platform"
        admin.site.index_title = "Overview"
        # The stock index with the protection overview above the list of models.
        admin.site.index_template = "console/admin_index.html"
