"""Shared pytest fixtures (api)."""
