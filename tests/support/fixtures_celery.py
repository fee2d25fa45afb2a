"""Shared pytest fixtures (celery)."""
