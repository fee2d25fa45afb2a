from django.apps import AppConfig


class StoragePlatformConfig(AppConfig):
    name = "storage_platform"
    verbose_name = "Storage platform"
