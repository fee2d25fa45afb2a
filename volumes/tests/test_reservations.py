"""Quota reservations in one process: what counts against the room, expiry, dead owners,
renewal, and that every way an upload ends leaves no reservation behind.

Concurrent uploads over HTTP are in test_parallel_uploads.py.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.engine.locking import process_namespace
from volumes import dataplane
from volumes.models import UploadReservation, Volume
from volumes.reservations import RENEW_INTERVAL_SECONDS, RESERVATION_TTL, NoRoom, QuotaReservation
from volumes.tests.conftest import assert_error

pytestmark = pytest.mark.django_db

CHUNK = dataplane.CHUNK_SIZE
ROOM = 3 * CHUNK


@pytest.fixture
def volume(make_volume):
    """A volume with ROOM bytes of free room."""
    volume = make_volume("reserved")
    Volume.objects.filter(pk=volume.pk).update(used_bytes=volume.quota_bytes - ROOM)
    return Volume.objects.get(pk=volume.pk)


def put(client, volume, path, content: bytes):
    return client.put(f"/api/v1/volumes/{volume.name}/files/{path}", content,
                      content_type="application/octet-stream")


def reserve(volume, size: int, *, expires_in=timedelta(minutes=5), host="other-host", namespace="other-boot:1",
            pid=4242) -> UploadReservation:
    """A reservation as another upload would hold it."""
    return UploadReservation.objects.create(volume=volume, reserved_bytes=size, path="other.bin", owner_host=host,
                                            owner_namespace=namespace, owner_pid=pid,
                                            expires_at=timezone.now() + expires_in)


def used_bytes(volume) -> int:
    return Volume.objects.get(pk=volume.pk).used_bytes


def held_bytes(volume) -> int:
    return sum(UploadReservation.objects.filter(volume=volume).values_list("reserved_bytes", flat=True))


def exited_pid() -> int:
    """The pid of a process of this host that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class WatchingStream(io.BytesIO):
    """A body that records, at each read, (bytes read so far, bytes the volume's reservations
    hold), and runs `on_first_read` once."""

    def __init__(self, content: bytes, volume, on_first_read=None):
        super().__init__(content)
        self.volume = volume
        self.on_first_read = on_first_read
        self.seen: list[tuple[int, int]] = []

    def read(self, size=-1):
        if self.on_first_read is not None:
            self.on_first_read()
            self.on_first_read = None
        self.seen.append((self.tell(), held_bytes(self.volume)))
        return super().read(size)


# --- what an upload holds ------------------------------------------------------------------
def test_room_held_by_another_upload_is_not_free(admin, volume):
    reserve(volume, ROOM - 1000)
    body = assert_error(put(admin, volume, "big.bin", b"x" * 1001), 413, "payload_too_large")
    assert body["detail"]["available_bytes"] == 1000
    assert body["detail"]["reserved_bytes"] == ROOM - 1000
    assert body["detail"]["quota_bytes"] == volume.quota_bytes
    assert put(admin, volume, "fits.bin", b"x" * 1000).status_code == 201
    assert used_bytes(volume) == volume.quota_bytes - ROOM + 1000


def test_a_declared_upload_holds_its_whole_length_before_the_first_read_and_converts_it(volume):
    size = 5 * CHUNK // 2
    stream = WatchingStream(b"d" * size, volume)
    dataplane.write_file(volume, "declared.bin", stream, content_length=size)
    assert stream.seen[0] == (0, size)
    assert not UploadReservation.objects.exists()
    assert used_bytes(volume) == volume.quota_bytes - ROOM + size


def test_an_undeclared_upload_holds_exactly_what_has_arrived(volume):
    size = 5 * CHUNK // 2
    stream = WatchingStream(b"u" * size, volume)
    dataplane.write_file(volume, "undeclared.bin", stream, content_length=None)
    assert stream.seen == [(0, 0), (CHUNK, CHUNK), (2 * CHUNK, 2 * CHUNK), (size, size)]
    assert not UploadReservation.objects.exists()
    assert used_bytes(volume) == volume.quota_bytes - ROOM + size


def test_replacing_a_file_holds_only_its_growth(admin, volume):
    assert put(admin, volume, "grow.bin", b"a" * (ROOM - 1000)).status_code == 201
    # 1 000 bytes are free: ROOM bytes replacing ROOM - 1000 need exactly those.
    assert put(admin, volume, "grow.bin", b"b" * ROOM).status_code == 200
    assert used_bytes(volume) == volume.quota_bytes
    assert not UploadReservation.objects.exists()


def test_a_replaced_file_deleted_meanwhile_must_fit_again_before_the_new_one_appears(admin, volume):
    assert put(admin, volume, "a.bin", b"a" * ROOM).status_code == 201  # the volume is full

    def delete_it_and_let_another_upload_take_the_room():
        dataplane.delete_path(volume, "a.bin")
        reserve(volume, ROOM)

    stream = WatchingStream(b"b" * ROOM, volume, on_first_read=delete_it_and_let_another_upload_take_the_room)
    with pytest.raises(dataplane.OverQuota):
        dataplane.write_file(volume, "a.bin", stream, content_length=ROOM)
    assert sorted(os.listdir(volume.path)) == []
    assert used_bytes(volume) == volume.quota_bytes - ROOM
    assert held_bytes(volume) == ROOM  # only the other upload's


# --- every ending gives the room back ------------------------------------------------------
class BreaksAfterOneChunk:
    def __init__(self):
        self.calls = 0

    def read(self, size):
        self.calls += 1
        if self.calls == 1:
            return b"a" * size
        raise ConnectionResetError("client went away")


def test_every_failed_upload_releases_its_room(admin, volume, monkeypatch):
    with pytest.raises(dataplane.IncompleteUpload):  # the body is shorter than declared
        dataplane.write_file(volume, "short.bin", io.BytesIO(b"s" * 10), content_length=ROOM)
    with pytest.raises(dataplane.IncompleteUpload):  # the client disconnects
        dataplane.write_file(volume, "cut.bin", BreaksAfterOneChunk(), content_length=ROOM)
    with pytest.raises(dataplane.OverQuota):  # an undeclared body outgrows the room
        dataplane.write_file(volume, "huge.bin", io.BytesIO(b"h" * (ROOM + 1)), content_length=None)
    assert_error(put(admin, volume, "too-big.bin", b"t" * (ROOM + 1)), 413, "payload_too_large")

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(dataplane.os, "fsync", failing_fsync)  # fault injection: the disk fails
    assert_error(put(admin, volume, "io.bin", b"i" * CHUNK), 500, "pool_error")
    monkeypatch.undo()

    assert not UploadReservation.objects.exists()
    assert used_bytes(volume) == volume.quota_bytes - ROOM
    assert os.listdir(volume.path) == []
    assert put(admin, volume, "all-of-it.bin", b"f" * ROOM).status_code == 201


# --- reservations nobody will release ------------------------------------------------------
def test_an_expired_reservation_no_longer_counts_and_is_deleted(admin, volume):
    reserve(volume, ROOM, expires_in=-timedelta(seconds=1))
    assert put(admin, volume, "after-expiry.bin", b"e" * ROOM).status_code == 201
    assert not UploadReservation.objects.exists()


def test_the_reservation_of_a_process_gone_from_this_host_is_reclaimed(admin, volume):
    assert process_namespace(), "this test needs /proc (Linux)"
    reserve(volume, ROOM, expires_in=timedelta(minutes=5), host=socket.gethostname(), namespace=process_namespace(),
            pid=exited_pid())
    assert put(admin, volume, "after-crash.bin", b"c" * ROOM).status_code == 201
    assert not UploadReservation.objects.exists()


def test_reservations_of_live_or_unknown_processes_are_kept(admin, volume):
    dead = exited_pid()
    reserve(volume, 1, host=socket.gethostname(), namespace=process_namespace(), pid=os.getpid())  # alive
    reserve(volume, 1, host=socket.gethostname(), namespace="another-container:1", pid=dead)  # cannot judge
    reserve(volume, 1, host="another-host", namespace=process_namespace(), pid=dead)  # cannot judge
    assert_error(put(admin, volume, "full.bin", b"f" * ROOM), 413, "payload_too_large")
    assert UploadReservation.objects.count() == 3


# --- renewal -------------------------------------------------------------------------------
class Clocks:
    """An injected wall clock (expiry) and monotonic clock (renewal pacing)."""

    def __init__(self):
        self.now = timezone.now()
        self.seconds = 0.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.seconds += seconds


def test_a_long_upload_renews_its_reservation_and_regains_it_after_a_reclaim(volume):
    clocks = Clocks()
    reservation = QuotaReservation(volume, "slow.bin", clock=lambda: clocks.now, monotonic=lambda: clocks.seconds)
    reservation.hold(1000)
    assert UploadReservation.objects.get(pk=reservation.pk).expires_at == clocks.now + RESERVATION_TTL
    clocks.advance(RENEW_INTERVAL_SECONDS - 1)
    reservation.renew_if_due()  # not due yet
    assert UploadReservation.objects.get(pk=reservation.pk).expires_at == clocks.now - timedelta(
        seconds=RENEW_INTERVAL_SECONDS - 1) + RESERVATION_TTL
    clocks.advance(1)
    reservation.renew_if_due()
    assert UploadReservation.objects.get(pk=reservation.pk).expires_at == clocks.now + RESERVATION_TTL

    # The upload stalled past its expiry and another upload reclaimed the row: the room is
    # still free, so the next renewal holds it again.
    UploadReservation.objects.filter(pk=reservation.pk).delete()
    clocks.advance(RENEW_INTERVAL_SECONDS)
    reservation.renew_if_due()
    assert held_bytes(volume) == 1000 and UploadReservation.objects.get().path == "slow.bin"

    # Reclaimed again, and this time another upload took the room: the stalled upload is refused.
    UploadReservation.objects.all().delete()
    reserve(volume, ROOM)
    clocks.advance(RENEW_INTERVAL_SECONDS)
    with pytest.raises(NoRoom):
        reservation.renew_if_due()


def test_a_hold_that_does_not_fit_keeps_what_was_held(volume):
    reservation = QuotaReservation(volume, "partial.bin")
    reservation.hold(1000)
    reserve(volume, ROOM - 1500)
    with pytest.raises(NoRoom) as refused:
        reservation.hold(2000)
    assert refused.value.room.available_bytes == 1500  # the room for its total: its own 1000 count as free
    assert UploadReservation.objects.get(pk=reservation.pk).reserved_bytes == 1000
    reservation.release()
    assert held_bytes(volume) == ROOM - 1500
