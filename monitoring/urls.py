"""URL routes of the monitoring app, mounted at the site root: /metrics (no API token)."""

from django.urls import path

from monitoring import views

urlpatterns = [
    path("metrics", views.metrics, name="metrics"),
]
