"""The job state machine: claim, heartbeat takeover, cancel, retries with backoff, failures.

Runners are replaced by small functions here: these tests are about the state machine, not
the engine (the end-to-end test runs the real engine in a real worker).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from backups import jobs, runners, services
from backups.engine.errors import BackendUnavailable, SourceError
from backups.errors import JobCancelled, JobFinished
from backups.models import Backup, BackupStatus, BackupTrigger, Job, JobKind, JobStatus

pytestmark = pytest.mark.django_db


def queue_backup(volume) -> Backup:
    return services.trigger_backup(volume, trigger=BackupTrigger.API, actor="tests")


def test_a_queued_job_is_claimed_once_even_when_two_workers_get_its_message(volume):
    backup = queue_backup(volume)
    first = jobs.claim(backup.job_id, worker="host-a:1")
    second = jobs.claim(backup.job_id, worker="host-b:2")
    assert first is not None and first.status == JobStatus.RUNNING and first.worker == "host-a:1"
    assert first.attempts == 1
    assert second is None
    backup.refresh_from_db()
    assert backup.status == BackupStatus.RUNNING and backup.started_at is not None


def test_a_running_job_with_a_stale_heartbeat_can_be_taken_over(volume, settings):
    backup = queue_backup(volume)
    jobs.claim(backup.job_id, worker="host-a:1")
    fresh = jobs.claim(backup.job_id, worker="host-b:2")
    assert fresh is None
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 1)
    Job.objects.filter(pk=backup.job_id).update(heartbeat_at=stale)
    taken = jobs.claim(backup.job_id, worker="host-b:2")
    assert taken is not None and taken.worker == "host-b:2" and taken.attempts == 2


def test_a_job_held_by_a_dead_process_on_this_host_is_taken_over_at_once(volume, use_runner):
    backup = queue_backup(volume)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    jobs.claim(backup.job_id, worker=f"{socket.gethostname()}:{dead_pid}:{jobs.identity.pid_namespace()}")
    use_runner(JobKind.BACKUP, lambda job, context: {"ran": True})
    assert runners.execute(backup.job_id, worker="me:1") == JobStatus.SUCCEEDED
    job = Job.objects.get(pk=backup.job_id)
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 2 and job.result == {"ran": True}


def test_a_killed_process_not_yet_reaped_counts_as_dead():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert jobs.identity.process_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and jobs.identity.process_alive(child.pid):
            time.sleep(0.01)
        assert not jobs.identity.process_alive(child.pid)  # a zombie: killed, its parent has not waited yet
    finally:
        child.kill()
        child.wait()


def test_a_dead_pid_in_another_pid_namespace_proves_nothing(volume):
    backup = queue_backup(volume)
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    # Same host name, other namespace: a container sharing the host's name (host networking).
    holder = f"{socket.gethostname()}:{int(finished.stdout)}:ns1"
    job = jobs.claim(backup.job_id, worker=holder)
    assert jobs.take_over_dead_local_worker(job, worker="me:1:ns2") is None
    assert Job.objects.get(pk=job.pk).worker == holder


def test_a_redelivered_message_of_a_finished_job_does_nothing(volume, use_runner):
    calls = []
    use_runner(JobKind.BACKUP, lambda job, context: calls.append(job.pk) or {})
    backup = queue_backup(volume)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    assert runners.execute(backup.job_id) == "duplicate"
    assert len(calls) == 1


def test_a_message_for_an_unknown_or_malformed_job_id_is_dropped():
    assert runners.execute("00000000-0000-0000-0000-000000000000") == "missing"
    assert runners.execute("not-a-uuid") == "missing"


def test_a_transient_error_after_a_cancel_request_cancels_instead_of_retrying(volume, use_runner):
    def unavailable(job, context):
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)  # the cancel arrives mid-run
        raise BackendUnavailable("S3 answered 503")

    use_runner(JobKind.BACKUP, unavailable)
    backup = queue_backup(volume)
    assert runners.execute(backup.job_id) == JobStatus.CANCELLED
    assert Job.objects.get(pk=backup.job_id).status == JobStatus.CANCELLED


def test_a_successful_backup_job_completes_its_backup(volume, use_runner):
    use_runner(JobKind.BACKUP, lambda job, context: context.progress(5, 10, "half") or {"snapshot_id": "s1"})
    backup = queue_backup(volume)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    backup.refresh_from_db()
    job = backup.job
    assert backup.status == BackupStatus.COMPLETED and backup.completed_at == job.finished_at
    assert job.progress_done == job.progress_total == 10


def test_cancelling_a_queued_job_cancels_it_and_its_backup_at_once(volume, use_runner):
    calls = []
    use_runner(JobKind.BACKUP, lambda job, context: calls.append(1) or {})
    backup = queue_backup(volume)
    job = services.cancel_job(backup.job)
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    backup.refresh_from_db()
    assert backup.status == BackupStatus.CANCELLED
    # Its message may still arrive: the worker must not run it.
    assert runners.execute(job.pk) == "duplicate"
    assert calls == []


def test_cancelling_a_finished_job_is_a_conflict(volume, use_runner):
    use_runner(JobKind.BACKUP, lambda job, context: {})
    backup = queue_backup(volume)
    runners.execute(backup.job_id)
    with pytest.raises(JobFinished):
        services.cancel_job(Job.objects.get(pk=backup.job_id))


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_job_stops_it_at_its_next_chunk(volume, use_runner, settings):
    settings.JOB_HEARTBEAT_SECONDS = 0.05
    started = threading.Event()
    chunks = []

    def slow_runner(job, context):
        started.set()
        for chunk in range(400):  # at most ~20 s, far more than the cancel needs
            if context.cancel():
                raise JobCancelled()
            chunks.append(chunk)
            time.sleep(0.05)
        return {"finished": True}

    use_runner(JobKind.BACKUP, slow_runner)
    backup = queue_backup(volume)
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.setdefault("status", runners.execute(backup.job_id)))
    worker.start()
    assert started.wait(10)
    services.cancel_job(Job.objects.get(pk=backup.job_id))
    worker.join(30)
    assert outcome["status"] == JobStatus.CANCELLED
    assert len(chunks) < 400
    backup.refresh_from_db()
    assert backup.status == BackupStatus.CANCELLED and backup.job.status == JobStatus.CANCELLED


def test_transient_errors_retry_with_backoff_then_fail_after_max_attempts(volume, use_runner, sent_messages,
                                                                            monkeypatch,
                                                                            django_capture_on_commit_callbacks):
    monkeypatch.setattr(jobs.retry, "retry_policy", jobs.RetryPolicy(base_seconds=10, cap_seconds=25, jitter=lambda: 1.0))

    def unavailable(job, context):
        raise BackendUnavailable("S3 answered 503")

    use_runner(JobKind.BACKUP, unavailable)
    with django_capture_on_commit_callbacks(execute=True):
        backup = queue_backup(volume)
    job_id = str(backup.job_id)
    assert sent_messages == [(job_id, "backup", None)]

    with django_capture_on_commit_callbacks(execute=True):
        assert runners.execute(job_id) == JobStatus.QUEUED
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1 and job.status == JobStatus.QUEUED and "S3 answered 503" in job.error
    assert sent_messages[-1] == (job_id, "backup", 10.0)  # base * 2**0, full jitter
    assert job.run_after > timezone.now() + timedelta(seconds=8)
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.QUEUED

    # A message that arrives before the backoff ended is put back with the remaining delay.
    assert runners.execute(job_id) == "deferred"
    assert 0 < sent_messages[-1][2] <= 10

    Job.objects.filter(pk=job_id).update(run_after=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert runners.execute(job_id) == JobStatus.QUEUED
    assert sent_messages[-1] == (job_id, "backup", 20.0)  # doubled
    Job.objects.filter(pk=job_id).update(run_after=timezone.now())
    assert runners.execute(job_id) == JobStatus.FAILED
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 3 and job.error_code == "storage_unavailable" and "gave up after 3" in job.error
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.FAILED


def test_backoff_grows_exponentially_and_is_capped():
    policy = jobs.RetryPolicy(base_seconds=2, cap_seconds=30, jitter=lambda: 0.0)
    assert [policy.delay(attempt) for attempt in (1, 2, 3, 4, 5, 6)] == [1, 2, 4, 8, 15, 15]


def test_a_permanent_error_fails_the_job_at_once_with_its_code(volume, use_runner):
    def unreadable(job, context):
        raise SourceError("The volume's folder cannot be read.")

    use_runner(JobKind.BACKUP, unreadable)
    backup = queue_backup(volume)
    assert runners.execute(backup.job_id) == JobStatus.FAILED
    job = Job.objects.get(pk=backup.job_id)
    assert job.attempts == 1 and job.error_code == "source_error"
    backup.refresh_from_db()
    assert backup.status == BackupStatus.FAILED and "cannot be read" in backup.error


def test_an_unexpected_error_fails_with_a_generic_message(volume, use_runner):
    def broken(job, context):
        raise KeyError("secret-internal-detail")

    use_runner(JobKind.BACKUP, broken)
    backup = queue_backup(volume)
    assert runners.execute(backup.job_id) == JobStatus.FAILED
    job = Job.objects.get(pk=backup.job_id)
    assert job.error_code == "internal_error" and "secret-internal-detail" not in job.error


def test_a_job_whose_worker_died_more_often_than_allowed_fails_as_worker_lost(volume, use_runner, settings):
    use_runner(JobKind.BACKUP, lambda job, context: {})
    backup = queue_backup(volume)
    stale = timezone.now() - timedelta(seconds=settings.JOB_STALE_AFTER_SECONDS + 1)
    Job.objects.filter(pk=backup.job_id).update(status=JobStatus.RUNNING, attempts=3, heartbeat_at=stale,
                                                worker="gone:1")
    assert runners.execute(backup.job_id) == JobStatus.FAILED
    assert Job.objects.get(pk=backup.job_id).error_code == "worker_lost"


def test_a_worker_that_lost_its_job_cannot_overwrite_the_new_owner(volume):
    backup = queue_backup(volume)
    job = jobs.claim(backup.job_id, worker="old:1")
    Job.objects.filter(pk=job.pk).update(worker="new:2")
    assert jobs.succeed(job, {"x": 1}, owned_by="old:1") is False
    assert jobs.fail(job, "boom", "x", owned_by="old:1") is False
    assert Job.objects.get(pk=job.pk).status == JobStatus.RUNNING


def test_requeue_puts_a_job_back_and_sends_it_again(volume, sent_messages, django_capture_on_commit_callbacks):
    backup = queue_backup(volume)
    job = jobs.claim(backup.job_id, worker="w:1")
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs.requeue(job, "worker stopped heartbeating")
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.worker == "" and job.sent_at is not None
    assert sent_messages[-1] == (str(job.pk), "backup", None)
    assert Backup.objects.get(pk=backup.pk).status == BackupStatus.QUEUED


def test_a_message_the_broker_refuses_leaves_the_job_queued_and_unsent(volume, monkeypatch,
                                                                       django_capture_on_commit_callbacks):
    def broker_down(*args):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(jobs.publish, "publisher", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        backup = queue_backup(volume)
    job = Job.objects.get(pk=backup.job_id)
    assert job.status == JobStatus.QUEUED and job.sent_at is None
