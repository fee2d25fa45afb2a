"""/health, /ready, /version (no token)."""

from django.urls import path

from storage_platform import system

urlpatterns = [
    path("health", system.health, name="health"),
    path("ready", system.ready, name="ready"),
    path("version", system.version, name="version"),
]
