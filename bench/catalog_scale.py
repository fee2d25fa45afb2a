"""Benchmark: the catalog at scale — `/metrics` and every list page, on SQLite or PostgreSQL.

Usage:
  .venv/bin/python bench/catalog_scale.py [--database sqlite|postgres] [--volumes 50000]
      [--backups-per-volume 3] [--runs 5] [--requests 100]

SQLite: a fresh database in a temporary DATA_DIR. PostgreSQL: `--postgres-url` (default
postgres://postgres@127.0.0.1:5432/sp_catalog_bench), dropped and created by this script.
The catalog is filled with bulk inserts (volumes with labels, backups, jobs), then timed
through Django's test client (middleware, authentication, serializers: everything but the
socket):

* `GET /metrics`: median and max of `--runs` scrapes, wall and CPU time;
* each list page: p50 / p99 / max of `--requests` requests (page 1, a deep page, filters,
  and the cursor form where the endpoint has one).

Targets: `/metrics` <= 250 ms, every list page p99 <= 50 ms. The load average is printed
before and after: the machine is shared, and wall time includes waiting for a core.
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
from urllib.parse import parse_qs, urlparse

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/sp_catalog_bench"


def _prepare_database(args) -> str | None:
    """Point Django at a fresh database; returns the temporary DATA_DIR to remove, if any."""
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench-catalog-")
    os.environ["DATA_DIR"] = data_dir
    if args.data_dir:
        os.environ.pop("DATABASE_URL", None)
        return None  # an existing SQLite catalog: kept
    if args.database == "sqlite":
        os.environ.pop("DATABASE_URL", None)
        return data_dir
    import psycopg

    base, _, name = args.postgres_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = args.postgres_url
    return data_dir


def fill(volumes_wanted: int, backups_per_volume: int) -> dict:
    """Bulk-insert the catalog; returns what the timed requests need (names, ids)."""
    from django.utils import timezone

    from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus
    from volumes.models import Volume

    now = timezone.now()
    volumes = [
        Volume(name=f"vol-{index:05d}", size_gb=10, status="available", used_bytes=index * 1024**2,
               labels={"team": f"team-{index % 100}", "env": ("prod", "test", "dev")[index % 3]})
        for index in range(volumes_wanted)
    ]
    Volume.objects.bulk_create(volumes, batch_size=5000)
    batch: list = []
    created = 0
    for index, volume in enumerate(volumes):
        for number in range(backups_per_volume):
            failed = (index + number) % 10 == 0
            finished = now - datetime.timedelta(hours=6 * (number + 1) + index % 48)
            batch.append(Backup(
                id=uuid.uuid4(), volume=volume, volume_name=volume.name,
                status=BackupStatus.FAILED if failed else BackupStatus.COMPLETED,
                started_at=finished - datetime.timedelta(minutes=5), completed_at=finished,
                snapshot_id="" if failed else uuid.uuid4().hex * 2,
                stats={} if failed else {"bytes_read": 10**7, "bytes_new": 10**6, "bytes_stored": 5 * 10**5,
                                         "duration_seconds": 30.0 + number * 100},
            ))
        if len(batch) >= 20_000:
            Backup.objects.bulk_create(batch, batch_size=5000)
            created += len(batch)
            batch = []
    Backup.objects.bulk_create(batch, batch_size=5000)
    created += len(batch)
    # created_at is auto_now_add: spread it so that ordering by it means something.
    Job.objects.bulk_create(
        [Job(kind=JobKind.BACKUP, status=JobStatus.SUCCEEDED, finished_at=now) for _ in range(1000)]
        + [Job(kind=JobKind.BACKUP, status=JobStatus.QUEUED) for _ in range(50)],
        batch_size=5000,
    )
    middle = volumes[len(volumes) // 2]
    return {"backups": created, "volume_name": middle.name, "volume_id": str(middle.id)}


def existing_facts() -> dict:
    from backups.models import Backup
    from volumes.models import Volume

    names = Volume.objects.order_by("name").values_list("name", "id")
    name, volume_id = names[names.count() // 2]
    return {"backups": Backup.objects.count(), "volume_name": name, "volume_id": str(volume_id)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--volumes", type=int, default=50_000)
    parser.add_argument("--backups-per-volume", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5, help="scrapes of /metrics")
    parser.add_argument("--requests", type=int, default=100, help="requests per list page")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--data-dir", help="reuse the SQLite catalog of an earlier --keep run (migrated, not refilled)")
    parser.add_argument("--lists-only", action="store_true", help="time the list pages only, not /metrics")
    args = parser.parse_args()

    data_dir = _prepare_database(args)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    from accounts.models import TokenSource
    from accounts.tokens import create_token

    load_before = os.getloadavg()[0]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    facts = existing_facts() if args.data_dir else fill(args.volumes, args.backups_per_volume)
    fill_seconds = time.perf_counter() - started
    if args.database == "postgres":
        # What autovacuum does to a catalog that grew over months: statistics, and the
        # visibility map that lets a count be an index-only scan. Straight after a bulk
        # insert neither exists yet, and every count reads the table's pages.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    token = create_token("bench", "read", source=TokenSource.CLI, created_by="bench")[1]
    client = Client(HTTP_HOST="localhost", HTTP_X_API_TOKEN=token)

    def get(path: str):
        response = client.get(path)
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}: {response.content[:300]!r}")
        return response

    def timed(path: str, count: int) -> tuple[list[float], list[float]]:
        get(path)  # warm-up: imports, statement and page caches
        wall, cpu = [], []
        for _ in range(count):
            began, began_cpu = time.perf_counter(), time.process_time()
            get(path)
            wall.append((time.perf_counter() - began) * 1000)
            cpu.append((time.process_time() - began_cpu) * 1000)
        return wall, cpu

    print(f"database={args.database} volumes={args.volumes} backups={facts['backups']} jobs=1050"
          f" fill={fill_seconds:.1f} s")
    from django.conf import settings

    if args.lists_only:
        settings.METRICS_CACHE_SECONDS = -1  # skip the /metrics section below
    else:
        settings.METRICS_CACHE_SECONDS = 0
    wall, cpu = timed("/metrics", args.runs) if not args.lists_only else ([0.0], [0.0])
    body = get("/metrics").content if not args.lists_only else b""
    if not args.lists_only:
        print(f"{'GET /metrics (render per scrape)':46s} median={statistics.median(wall):7.1f} max={max(wall):7.1f} ms"
              f" | cpu median={statistics.median(cpu):7.1f} ms  runs={len(wall)} bytes={len(body)}")
    if not args.lists_only and hasattr(settings, "METRICS_CACHE_SECONDS"):
        from monitoring import cached
        from monitoring.models import CatalogExposition

        settings.METRICS_CACHE_SECONDS = 60
        get("/metrics")  # the first scrape renders and stores the shared text
        render_seconds = CatalogExposition.objects.get().render_seconds
        wall, cpu = timed("/metrics", max(args.runs, 20))
        print(f"{'GET /metrics (METRICS_CACHE_SECONDS=60)':46s} median={statistics.median(wall):7.1f}"
              f" max={max(wall):7.1f} ms | cpu median={statistics.median(cpu):7.1f} ms  runs={len(wall)}"
              f" (background render {render_seconds * 1000:.0f} ms)")
        # A stale text: this scrape claims the refresh and still answers with the old text.
        CatalogExposition.objects.update(rendered_at=0)
        began = time.perf_counter()
        get("/metrics")
        print(f"{'GET /metrics (stale, starts background render)':46s} wall={1000 * (time.perf_counter() - began):7.1f} ms")
        cached.wait_for_background_refresh()
        settings.METRICS_CACHE_SECONDS = 0

    deep_backups = facts["backups"] // 50 // 2
    deep_volumes = args.volumes // 50 // 2
    pages = [
        "/api/v1/backups",
        f"/api/v1/backups?page={deep_backups}",
        f"/api/v1/backups?volume={facts['volume_name']}",
        "/api/v1/backups?status=failed",
        f"/api/v1/volumes/{facts['volume_id']}/backups",
        "/api/v1/volumes",
        f"/api/v1/volumes?page={deep_volumes}",
        "/api/v1/volumes?label=team=team-7",
        "/api/v1/volumes?label_selector=team=team-7,env=test",
        "/api/v1/jobs",
        "/api/v1/backups?cursor=&status=failed",
        "/api/v1/volumes?cursor=&label=team=team-7",
        "/api/v1/volumes?cursor=&label_selector=team=team-7,env=test",
    ]
    cursor_pages = _cursor_pages(get)
    for path in pages + cursor_pages:
        wall, cpu = timed(path, args.requests)
        print(f"{path[:46]:46s} p50={percentile(wall, 0.5):6.1f} p99={percentile(wall, 0.99):6.1f}"
              f" max={max(wall):6.1f} ms | cpu p50={percentile(cpu, 0.5):6.1f} ms")
    print(f"load average before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if not args.keep and not args.data_dir:
        connection.close()
        if args.database == "postgres":
            import psycopg

            base, _, name = args.postgres_url.rpartition("/")
            with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


def _cursor_pages(get) -> list[str]:
    """A cursor link from the middle of each cursor-paginated list (none before cursors existed)."""
    paths = []
    for start in ("/api/v1/backups?cursor=", "/api/v1/volumes?cursor="):
        body = get(start).json()
        link = body.get("next")
        if not parse_qs(urlparse(link or "").query).get("cursor"):
            continue
        for _ in range(20):  # twenty pages in: a cursor is as fast there as on page one
            link = get(link).json().get("next") or link
        paths.append(link[link.index("/api/"):])
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
