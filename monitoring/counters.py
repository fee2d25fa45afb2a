"""Persisted counters: the part of a counter that the catalog can no longer show.

Counters such as `backup_operations_total` are computed from catalog rows at scrape time, so
they agree across processes and survive restarts by construction. A row that is deleted would
make such a counter go down; before that happens its contribution is moved here
(`retire_backup`, `retire_job`, connected to `post_delete` in `monitoring.signals`), and the
collector adds these stored values to what it computes. Result: the counters never decrease.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from django.db import IntegrityError, transaction
from django.db.models import F

from monitoring.models import MetricCounter

CounterKey = tuple[str, str]  # (metric name, canonical JSON labels)


def canonical_labels(labels: Mapping[str, str] | None) -> str:
    """The stored form of a label set: sorted keys, no spaces, so equal sets compare equal."""
    return json.dumps(dict(labels or {}), sort_keys=True, separators=(",", ":"))


def increment(name: str, labels: Mapping[str, str] | None = None, amount: float = 1.0) -> None:
    """Add `amount` (>= 0) to the counter; atomic with any number of concurrent callers."""
    if amount < 0:
        raise ValueError("a counter can only grow")
    if amount == 0:
        return
    key = canonical_labels(labels)
    # UPDATE first: the common case is an existing row, and an UPDATE with F() is atomic.
    if MetricCounter.objects.filter(name=name, labels=key).update(value=F("value") + amount):
        return
    try:
        with transaction.atomic():
            MetricCounter.objects.create(name=name, labels=key, value=amount)
    except IntegrityError:
        # Another process created the row between our UPDATE and INSERT: add to theirs.
        MetricCounter.objects.filter(name=name, labels=key).update(value=F("value") + amount)


def read_all() -> dict[CounterKey, float]:
    """Every stored counter in one query, keyed by (name, canonical labels)."""
    return {(name, labels): value for name, labels, value in MetricCounter.objects.values_list("name", "labels", "value")}
