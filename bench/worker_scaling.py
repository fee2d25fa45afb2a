#!/usr/bin/env python3
"""Backup-all of many small volumes with 1 and with 2 worker processes.

    .venv/bin/python bench/worker_scaling.py                      # 1,000 x 1 MiB, workers 1 and 2
    .venv/bin/python bench/worker_scaling.py --volumes 200 --workers 1,2,4

For each worker count: a fresh repository and an empty job table, N real `celery worker`
processes (prefork, concurrency 1, prefetch 1, acks_late: the production settings) on a
PRIVATE redis-server, then `services.trigger_backup_all` and a wait until every job has
finished. Reported: total time (first trigger to last job finished), jobs/s, queue latency
(started_at - created_at: median, p99), job service time (finished_at - started_at) and
worker utilisation (sum of service time / (workers x total)), which shows whether time goes
into the jobs or between them (broker, claim, database). The speed-up is jobs/s(N) / jobs/s(1).

The database is PostgreSQL when `--database-url` (default: postgres on 127.0.0.1, database
`sp_scheduling_bench`) is reachable, else a SQLite file; the table names which one ran.
Nothing here touches the shared Redis or the shared tree's var/.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
CELERY = PYTHON.with_name("celery")
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/sp_scheduling_bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_usable(url: str) -> bool:
    try:
        import psycopg

        admin_url = url.rsplit("/", 1)[0] + "/postgres"
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
            connection.execute(f'CREATE DATABASE "{name}"')
        return True
    except Exception as error:  # no server, no driver, no rights: fall back to SQLite
        print(f"PostgreSQL not usable ({type(error).__name__}); using SQLite", file=sys.stderr)
        return False


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Bench:
    def __init__(self, args):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="sp-worker-scaling-"))
        self.redis_port = free_port()
        self.redis: subprocess.Popen | None = None
        self.env = dict(os.environ)
        database_url = args.database_url
        if not database_url.startswith("sqlite") and not postgres_usable(database_url):
            database_url = f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        self.database_url = database_url
        self.env.update({
            "DATA_DIR": str(self.workdir / "data"),
            "VOLUME_ROOT": str(self.workdir / "volumes"),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        })

    # --- processes ---------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.redis_port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def start_workers(self, count: int, repository_dir: Path) -> list[subprocess.Popen]:
        env = dict(self.env, REPOSITORY_DIR=str(repository_dir))
        workers = []
        for number in range(count):
            log = open(self.workdir / f"worker-{count}-{number}.log", "wb")
            workers.append(subprocess.Popen(
                [str(CELERY), "-A", "storage_platform", "worker", "-Q", "backup", "-c", "1", "-P", "prefork",
                 "--without-gossip", "--without-mingle", "-O", "fair", "-n", f"bench{number}-{uuid.uuid4().hex[:6]}@%h",
                 "--loglevel", "WARNING"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            log.close()
        time.sleep(0.5)
        # Readiness: a worker consumes as soon as it is up; waiting on an empty queue until its
        # process tree exists is enough, and the warm-up cost counts in no measurement below.
        deadline = time.monotonic() + 60
        from celery import Celery

        probe = Celery(broker=self.env["CELERY_BROKER_URL"])
        while time.monotonic() < deadline:
            replies = probe.control.ping(timeout=1.0) or []
            if len(replies) >= count:
                break
        else:
            raise RuntimeError("workers did not answer ping within 60 s")
        return workers

    @staticmethod
    def stop_workers(workers) -> None:
        for worker in workers:
            try:
                os.killpg(worker.pid, 15)
            except ProcessLookupError:
                pass
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, 9)
                worker.wait(timeout=10)

    # --- Django side -------------------------------------------------------------------
    def setup_django(self) -> None:
        os.environ.update(self.env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "storage_platform.settings")
        sys.path.insert(0, str(ROOT))
        subprocess.run([str(PYTHON), "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        import django

        django.setup()

    def create_volumes(self) -> None:
        from django.conf import settings

        from volumes.models import Volume, VolumeStatus

        size = self.args.size_mib * 1024 * 1024
        rows = []
        for number in range(self.args.volumes):
            volume_id = uuid.uuid4()
            path = Path(settings.VOLUME_ROOT) / str(volume_id)
            path.mkdir(parents=True)
            # Random data: nothing dedups or compresses across volumes, like distinct real data.
            (path / "data.bin").write_bytes(os.urandom(size))
            rows.append(Volume(id=volume_id, name=f"bench-{number:05d}", size_gb=1, status=VolumeStatus.AVAILABLE,
                               path=str(path), used_bytes=size))
        Volume.objects.bulk_create(rows, batch_size=500)

    def run_once(self, workers_count: int) -> dict:
        from django.db import connection

        from backups import services
        from backups.models import Backup, Job, JobStatus

        Backup.objects.all().delete()
        Job.objects.all().delete()
        connection.close()
        repository_dir = self.workdir / f"repository-{workers_count}"
        # Initialise the repository up front so no worker pays (or races) for it.
        from django.test.utils import override_settings

        with override_settings(STORAGES=self._storages(repository_dir)):
            from backups.storage import open_repository

            open_repository().close()
        workers = self.start_workers(workers_count, repository_dir)
        try:
            started = time.monotonic()
            queued, skipped = services.trigger_backup_all(trigger="api", actor="bench")
            enqueue_seconds = time.monotonic() - started
            job_ids = [backup.job_id for backup in queued]
            deadline = started + self.args.timeout
            while True:
                active = Job.objects.filter(pk__in=job_ids, status__in=(JobStatus.QUEUED, JobStatus.RUNNING)).count()
                if active == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            total_seconds = time.monotonic() - started
        finally:
            self.stop_workers(workers)
        jobs = list(Job.objects.filter(pk__in=job_ids).values("status", "created_at", "started_at", "finished_at"))
        succeeded = [job for job in jobs if job["status"] == JobStatus.SUCCEEDED]
        latency = [(job["started_at"] - job["created_at"]).total_seconds() for job in jobs if job["started_at"]]
        service = [(job["finished_at"] - job["started_at"]).total_seconds() for job in succeeded]
        # Service time early and late in the run: growth means a job's cost depends on how many
        # snapshots the repository already holds.
        by_start = sorted(succeeded, key=lambda job: job["started_at"])
        window = max(1, min(100, len(by_start) // 5))
        early = [(job["finished_at"] - job["started_at"]).total_seconds() for job in by_start[:window]]
        late = [(job["finished_at"] - job["started_at"]).total_seconds() for job in by_start[-window:]]
        if succeeded:
            # Wall time from the first job created to the last one finished, measured in the
            # database (the bench process's own clock above includes its polling interval).
            first = min(job["created_at"] for job in jobs)
            last = max(job["finished_at"] for job in succeeded)
            total_seconds = min(total_seconds, (last - first).total_seconds())
        return {
            "workers": workers_count, "jobs": len(job_ids), "succeeded": len(succeeded), "skipped": len(skipped),
            "not_finished": sum(job["status"] in (JobStatus.QUEUED, JobStatus.RUNNING) for job in jobs),
            "enqueue_s": enqueue_seconds, "total_s": total_seconds,
            "jobs_per_s": len(succeeded) / total_seconds if total_seconds else 0.0,
            "latency_median_s": statistics.median(latency) if latency else float("nan"),
            "latency_p99_s": percentile(latency, 0.99),
            "service_median_s": statistics.median(service) if service else float("nan"),
            "utilisation": sum(service) / (workers_count * total_seconds) if total_seconds else 0.0,
            "service_early_s": statistics.median(early) if early else float("nan"),
            "service_late_s": statistics.median(late) if late else float("nan"),
            "window": window,
        }

    def _storages(self, repository_dir: Path) -> dict:
        from django.conf import settings

        storages = dict(settings.STORAGES)
        storages["backups"] = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                               "OPTIONS": {"location": str(repository_dir)}}
        return storages

    def close(self) -> None:
        if self.redis is not None:
            self.redis.kill()
            self.redis.wait(timeout=10)
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def table(results: list[dict], database: str, args) -> str:
    baseline = next((row for row in results if row["workers"] == 1), None)
    lines = [
        f"{args.volumes} volumes x {args.size_mib} MiB random data, local repository, database: {database}, "
        f"{os.cpu_count()} CPUs (shared machine).",
        "",
        "| workers | jobs ok | total s | jobs/s | queue latency median s | p99 s | job median s | utilisation | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results:
        speed_up = row["jobs_per_s"] / baseline["jobs_per_s"] if baseline and baseline["jobs_per_s"] else float("nan")
        lines.append(
            f"| {row['workers']} | {row['succeeded']}/{row['jobs']} | {row['total_s']:.1f} | {row['jobs_per_s']:.1f} "
            f"| {row['latency_median_s']:.1f} | {row['latency_p99_s']:.1f} | {row['service_median_s']:.3f} "
            f"| {row['utilisation']:.0%} | {speed_up:.2f}x |")
    lines += ["", "| workers | job median, first jobs s | job median, last jobs s | enqueue of all jobs s |",
              "| --- | --- | --- | --- |"]
    for row in results:
        lines.append(f"| {row['workers']} | {row['service_early_s']:.3f} (first {row['window']}) "
                     f"| {row['service_late_s']:.3f} (last {row['window']}) | {row['enqueue_s']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=1)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--timeout", type=float, default=900.0, help="per run, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, repositories)")
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        print("redis-server is needed (apt-get install redis-server)", file=sys.stderr)
        return 2
    bench = Bench(args)
    results = []
    try:
        bench.start_redis()
        bench.setup_django()
        bench.create_volumes()
        for count in (int(part) for part in args.workers.split(",")):
            result = bench.run_once(count)
            print(f"workers={count}: {result}", file=sys.stderr)
            results.append(result)
    finally:
        bench.close()
    database = "PostgreSQL" if bench.database_url.startswith("postgres") else "SQLite"
    print(table(results, database, args))
    return 0 if all(row["not_finished"] == 0 for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
