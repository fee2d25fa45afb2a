"""`manage.py backup_all`: one line per volume, waits for the real runner, exit status."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import CommandError, call_command

from backups import runners
from backups.models import Backup, Job, JobStatus


def run_queued_jobs_in_background(stop: threading.Event, fail_volume: str | None = None):
    """A stand-in worker in a thread: runs every queued backup job through the real runner
    (`runners.execute`, what the Celery task calls), failing the one of `fail_volume`."""
    from django.db import connection

    def loop():
        try:
            while not stop.is_set():
                for job in Job.objects.filter(status=JobStatus.QUEUED).select_related("volume"):
                    if fail_volume and job.volume.name == fail_volume:
                        from backups import jobs

                        jobs.fail(job, "The volume directory is unreadable.", "io_error")
                    else:
                        runners.execute(job.pk, worker="test-thread:1")
                time.sleep(0.05)
        finally:
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def worker_thread(transactional_db, monkeypatch):
    from backups import jobs

    # The thread is the worker here: it finds queued jobs in the database, so no broker message
    # is needed (and none is left in a shared Redis).
    monkeypatch.setattr(jobs.publish, "publisher", lambda job_id, queue, countdown: None)
    stop = threading.Event()
    threads = []

    def start(**kwargs):
        threads.append(run_queued_jobs_in_background(stop, **kwargs))

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def test_backup_all_waits_and_prints_one_line_per_volume(make_volume, worker_thread, capsys):
    make_volume("alpha", files={"a.txt": b"alpha" * 100})
    make_volume("beta", files={"b.txt": b"beta" * 100})
    worker_thread()

    call_command("backup_all", "--timeout", "60", "--poll-interval", "0.1")

    lines = capsys.readouterr().out.strip().splitlines()
    volume_lines = sorted(line for line in lines if line.startswith("volume="))
    assert [line.split()[:2] for line in volume_lines] == [["volume=alpha", "status=completed"],
                                                           ["volume=beta", "status=completed"]]
    assert all("snapshot=" in line for line in volume_lines)
    assert lines[-1] == "backup_all: skipped=0 completed=2 failed=0 cancelled=0 unfinished=0"
    assert set(Backup.objects.values_list("trigger", flat=True)) == {"schedule"}


def test_backup_all_exits_non_zero_when_a_backup_failed(make_volume, worker_thread, capsys):
    make_volume("good", files={"a.txt": b"x"})
    make_volume("bad", files={"b.txt": b"y"})
    worker_thread(fail_volume="bad")

    with pytest.raises(CommandError) as raised:
        call_command("backup_all", "--timeout", "60", "--poll-interval", "0.1")

    assert raised.value.returncode == 1
    out = capsys.readouterr().out
    assert "volume=bad status=failed" in out and "unreadable" in out
    assert "volume=good status=completed" in out


def test_no_wait_queues_and_reports_queued(make_volume, db, capsys):
    make_volume("alpha")
    call_command("backup_all", "--no-wait")
    out = capsys.readouterr().out
    assert "volume=alpha status=queued" in out
    assert Job.objects.get().status == JobStatus.QUEUED


def test_timeout_exits_2_and_names_the_unfinished_volume(make_volume, db, capsys):
    make_volume("slow")
    with pytest.raises(CommandError) as raised:
        call_command("backup_all", "--timeout", "0.2", "--poll-interval", "0.05")
    assert raised.value.returncode == 2
    assert "volume=slow status=timeout" in capsys.readouterr().out


def test_a_busy_volume_is_skipped_not_failed_and_unknown_volume_exits_3(make_volume, db, capsys):
    from backups import services

    busy = make_volume("busy")
    services.trigger_backup(busy, trigger="api")
    call_command("backup_all", "--no-wait", "--volume", "busy")
    assert "volume=busy status=skipped" in capsys.readouterr().out
    with pytest.raises(CommandError) as raised:
        call_command("backup_all", "--volume", "no-such-volume")
    assert raised.value.returncode == 3


def test_reconcile_jobs_command_prints_a_summary(db, capsys):
    call_command("reconcile_jobs")
    assert capsys.readouterr().out.strip() == "reconcile_jobs: resent=0 waiting=0 requeued=0 failed=0"


def test_policy_option_backs_up_only_that_policys_volumes(make_volume, db, capsys):
    from backups.models import Policy

    nightly = Policy.objects.create(name="nightly")
    make_volume("in-policy", policy=nightly)
    make_volume("elsewhere")
    call_command("backup_all", "--no-wait", "--policy", "nightly")
    out = capsys.readouterr().out
    assert "volume=in-policy status=queued" in out and "elsewhere" not in out
    with pytest.raises(CommandError) as raised:
        call_command("backup_all", "--policy", "no-such-policy")
    assert raised.value.returncode == 3
