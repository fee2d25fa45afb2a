"""Re-verify within VERIFY_REVERIFY_DAYS: a scheduled verify reads whatever would otherwise
pass the window before the next one, whatever its percentage, and the catalog's packs say how
many bytes are still unread (backup_unverified_bytes)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest

from backups import pack_verification, runners, services
from backups.models import BackupTrigger, Job, JobStatus, PackVerification, Policy
from backups.scheduling.fanout import start_policy_verify

pytestmark = pytest.mark.django_db

SUNDAY = datetime(2026, 1, 4, 3, 0, tzinfo=timezone.utc)  # a run of "0 3 * * 0"
PACK_BYTES = 1000
WEEKS = 18  # four 30-day windows and more


@pytest.fixture
def weekly_one_percent_verify(settings):
    """Only the default policy verifies: Sundays 03:00, 1 % of the packs; a 30-day window."""
    settings.VERIFY_REVERIFY_DAYS = 30
    Policy.objects.exclude(is_default=True).delete()
    Policy.objects.filter(is_default=True).update(enabled=True, verify_schedule="0 3 * * 0", verify_percent=1)


def simulate(make_selection) -> tuple[int, list[float]]:
    """200 packs at the start, 5 more every evening, a verify every Sunday at 03:00 choosing
    with `make_selection(now)`. Answers the largest overdue byte count seen at any 03:00 or
    18:00, and the share of the packs each verify read."""
    pack_verification.register_written({f"old-{number:04d}": PACK_BYTES for number in range(200)},
                                       at=SUNDAY - timedelta(days=1))
    worst, shares = 0, []
    for day in range(WEEKS * 7):
        morning = SUNDAY + timedelta(days=day)
        # Measured as the verify starts, before it has read anything.
        worst = max(worst, pack_verification.unverified_bytes(morning).overdue)
        if morning.weekday() == 6:
            present = list(PackVerification.objects.values_list("pack_id", flat=True))
            select = make_selection(morning)
            chosen = select(present)
            pack_verification.record(chosen, [], offered=present, sizes=dict.fromkeys(present, PACK_BYTES), at=morning)
            shares.append(len(chosen) / len(present))
        evening = morning + timedelta(hours=15)
        pack_verification.register_written({f"day{day:03d}-{number}": PACK_BYTES for number in range(5)}, at=evening)
        worst = max(worst, pack_verification.unverified_bytes(evening).overdue)
    return worst, shares


def test_a_weekly_one_percent_verify_reads_every_pack_within_the_window(weekly_one_percent_verify):
    worst, shares = simulate(lambda now: pack_verification.selection(1, now=now))
    assert worst == 0
    # The window's share per run (7 / 30 days), not 1 %, and spread evenly: once the first
    # window has passed, no verify reads everything again at once.
    assert min(shares) >= 7 / 30 and max(shares[6:]) < 0.5


def test_the_percentage_alone_lets_packs_pass_the_window(weekly_one_percent_verify):
    worst, _ = simulate(lambda now: pack_verification.Selection(1))
    assert worst > 0


def test_the_plan_follows_the_next_scheduled_data_reading_verify(weekly_one_percent_verify):
    Policy.objects.create(name="structure-only", verify_schedule="0 * * * *", verify_percent=0)
    Policy.objects.create(name="disabled", enabled=False, verify_schedule="0 * * * *", verify_percent=50)
    plan = pack_verification.reverify_plan(SUNDAY)
    assert plan.next_verify == SUNDAY + timedelta(days=7)
    assert plan.due_before == SUNDAY + timedelta(days=7) + pack_verification.EARLY - timedelta(days=30)
    assert plan.least_percent == pytest.approx(100 * 7 / 30)
    Policy.objects.all().update(verify_schedule="")
    unscheduled = pack_verification.reverify_plan(SUNDAY)
    assert (unscheduled.next_verify, unscheduled.least_percent) == (None, 0.0)
    assert unscheduled.due_before == SUNDAY + pack_verification.EARLY - timedelta(days=30)


def test_unverified_bytes_split_pending_and_overdue(settings):
    settings.VERIFY_REVERIFY_DAYS = 10
    days = timedelta(days=1)
    for pack_id, verified_at, first_seen_at, size in [
        ("new", None, SUNDAY - 1 * days, 1),  # awaiting its first verify
        ("old-never", None, SUNDAY - 20 * days, 20),  # never read in 20 days
        ("fresh", SUNDAY - 2 * days, SUNDAY - 40 * days, 300),
        ("stale", SUNDAY - 11 * days, SUNDAY - 40 * days, 4000),
    ]:
        PackVerification.objects.create(pack_id=pack_id, verified_at=verified_at, first_seen_at=first_seen_at,
                                        size_bytes=size)
    assert pack_verification.unverified_bytes(SUNDAY) == pack_verification.UnverifiedBytes(pending=1, overdue=4020)


def test_the_scheduled_verify_reads_packs_that_would_pass_the_window_and_the_catalog_knows_every_pack(
        weekly_one_percent_verify, make_volume, own_repository, sent_messages):
    volume = make_volume("vol-window", files={"a.bin": os.urandom(300_000), "b.bin": os.urandom(300_000)})
    backup = services.trigger_backup(volume, trigger=BackupTrigger.MANUAL)
    assert runners.execute(backup.job_id) == JobStatus.SUCCEEDED
    on_disk = {path.name: path.stat().st_size for path in (own_repository / "data").rglob("*") if path.is_file()}
    # The backup registered what it wrote: sizes from storage, never verified yet.
    assert dict(PackVerification.objects.values_list("pack_id", "size_bytes")) == on_disk
    assert not PackVerification.objects.filter(verified_at__isnull=False).exists()
    now = datetime.now(timezone.utc)
    assert pack_verification.unverified_bytes(now).pending == sum(on_disk.values())
    assert pack_verification.unverified_bytes(now + timedelta(days=31)).overdue == sum(on_disk.values())

    first = Job.objects.get(pk=start_policy_verify(Policy.objects.get(is_default=True).pk))
    assert runners.execute(first.pk) == JobStatus.SUCCEEDED
    first.refresh_from_db()
    assert first.result["packs_chosen"] == len(on_disk) == first.result["packs_verified"]
    assert first.result["reverify"]["days"] == 30 and first.result["reverify"]["next_verify"]
    assert set(PackVerification.objects.values_list("verified_at", flat=True)) == {first.started_at}
    assert pack_verification.unverified_bytes(now) == pack_verification.UnverifiedBytes(0, 0)

    # 29.5 days later the window of every pack ends before the next weekly run: a 1 % verify
    # reads them all.
    PackVerification.objects.update(verified_at=now - timedelta(days=29, hours=12))
    again = services.start_verify(read_data_percent=1, policy=Policy.objects.get(is_default=True))
    assert runners.execute(again.pk) == JobStatus.SUCCEEDED
    again.refresh_from_db()
    assert again.result["report"]["packs_read"] == len(on_disk)
    assert not PackVerification.objects.filter(verified_at__lt=now).exists()
