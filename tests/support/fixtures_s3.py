"""Shared pytest fixtures (s3)."""
