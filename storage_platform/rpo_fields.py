"""The DRF field of `rpo_hours` in responses (storage_platform/rpo.py has the rule)."""

from __future__ import annotations

from rest_framework import serializers


class RpoHoursField(serializers.FloatField):
    """The hours as computed (24, or 0.25 for 15 minutes): never forced to a float (24.0),
    which typed clients written for whole hours would choke on, nor truncated to 0."""

    def to_representation(self, value):
        return value
