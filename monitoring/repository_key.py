"""`repository_key_secret_file_outdated`: whether this process's REPOSITORY_KEY predates the
latest repository key rotation (docs/security.md, "Repository keys").

A live gauge (`LIVE_REGISTRY`), not a catalog one: the answer depends on the scraped
process's own environment, so each API instance reports its own secret file, and a shared
render (`monitoring.cached`) would hide an instance that was missed. One indexed query and
an AES-GCM open per scrape; storage is never read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from backups.repository_secret import secret_file_is_outdated

logger = logging.getLogger(__name__)


class RepositoryKeyCollector:
    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            outdated = secret_file_is_outdated()
        except Exception as error:  # a scrape must not fail; the database's own gauge says why
            logger.warning("repository key metric not computed: %s", type(error).__name__)
            return
        yield GaugeMetricFamily(
            "repository_key_secret_file_outdated",
            "1 when the latest repository key rotation stored a secret that this process's REPOSITORY_KEY "
            "does not hold: the secret file and its offline copy predate the rotation.",
            value=1.0 if outdated else 0.0)
