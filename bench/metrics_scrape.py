"""Benchmark: time a /metrics scrape with 10,000 volumes (and their backups) in the catalog.

Usage: .venv/bin/python bench/metrics_scrape.py [--volumes 10000] [--backups-per-volume 3] [--runs 5]

Builds a fresh SQLite database in a temporary DATA_DIR (nothing else is touched), fills it
with bulk inserts, then times (a) the catalog collector with our exposition and (b) a whole
GET /metrics through Django (+ django-prometheus metrics, middleware, readiness gauge), and
prints the median and range of `--runs` scrapes in wall-clock and CPU time, plus the number
of SQL queries of one scrape.
Target: the whole scrape under 250 ms.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=10_000)
    parser.add_argument("--backups-per-volume", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary DATA_DIR (database) afterwards")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="bench-metrics-")
    os.environ["DATA_DIR"] = data_dir
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus
    from monitoring.collectors import CatalogCollector
    from monitoring.exposition import render
    from volumes.models import Volume

    load_before = f"{os.getloadavg()[0]:.2f}"
    call_command("migrate", verbosity=0)
    now = timezone.now()
    volumes = [
        Volume(name=f"vol-{index:05d}", size_gb=10, status="available", used_bytes=index * 1024**2)
        for index in range(args.volumes)
    ]
    Volume.objects.bulk_create(volumes, batch_size=2000)
    backups = []
    for index, volume in enumerate(volumes):
        for number in range(args.backups_per_volume):
            failed = (index + number) % 10 == 0
            finished = now - datetime.timedelta(hours=6 * (number + 1) + index % 48)
            backups.append(
                Backup(
                    id=uuid.uuid4(),
                    volume=volume,
                    volume_name=volume.name,
                    status=BackupStatus.FAILED if failed else BackupStatus.COMPLETED,
                    started_at=finished - datetime.timedelta(minutes=5),
                    completed_at=finished,
                    snapshot_id="" if failed else uuid.uuid4().hex * 2,
                    stats={} if failed else {"bytes_read": 10**7, "bytes_new": 10**6, "bytes_stored": 5 * 10**5,
                                             "duration_seconds": 30.0 + number * 100},
                )
            )
    Backup.objects.bulk_create(backups, batch_size=2000)
    Job.objects.bulk_create(
        [Job(kind=JobKind.BACKUP, status=JobStatus.SUCCEEDED, finished_at=now) for _ in range(1000)]
        + [Job(kind=JobKind.BACKUP, status=JobStatus.QUEUED) for _ in range(50)],
        batch_size=2000,
    )

    client = Client(HTTP_HOST="localhost")
    render(CatalogCollector().collect())  # first use: imports, SQLite statement cache

    def timed(function) -> tuple[list[float], list[float]]:
        """Wall-clock and CPU milliseconds of `args.runs` calls. CPU time (this process only;
        SQLite runs in-process) is what the scrape costs; wall time adds waiting for a core,
        which on a shared machine says more about the neighbours than about the code."""
        function()  # warm-up: SQLite page cache, Python imports
        wall, cpu = [], []
        for _ in range(args.runs):
            started, started_cpu = time.perf_counter(), time.process_time()
            function()
            wall.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        return wall, cpu

    collector = CatalogCollector()
    with CaptureQueriesContext(connection) as captured:
        body = render(collector.collect())
    # Read now: every request through the test client resets the connection's query log.
    query_count = len(captured.captured_queries)
    collector_ms = timed(lambda: render(collector.collect()))
    scrape_ms = timed(lambda: client.get("/metrics").content)
    response = client.get("/metrics")
    print(f"volumes={args.volumes} backups={len(backups)} jobs=1050 database=sqlite ({data_dir})")
    print(f"load average before/after: {load_before} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"catalog collector: queries={query_count} bytes={len(body)}")
    for label, (wall, cpu) in (("collector+exposition", collector_ms), ("GET /metrics", scrape_ms)):
        print(f"{label:22s} wall median={statistics.median(wall):7.1f} ms min={min(wall):7.1f} max={max(wall):7.1f}"
              f" | cpu median={statistics.median(cpu):7.1f} ms min={min(cpu):7.1f}  runs={len(wall)}")
    print(f"GET /metrics status={response.status_code} bytes={len(response.content)}")
    if not args.keep:
        connection.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
