"""Quota reservations: the room in a volume's quota that uploads in progress hold.

Without them two uploads that each fit alone could both stream into the same free room and
together overshoot the quota. The rules callers rely on:

* **One invariant.** `used_bytes + sum(live reservations) <= quota_bytes`. `QuotaReservation.hold`
  checks it and writes the reservation in one transaction that holds the volume's row lock
  (PostgreSQL: `SELECT ... FOR UPDATE` on the volume row; SQLite: the `IMMEDIATE` transaction
  takes the database's write lock at `BEGIN`), so two holds on one volume are serialised and
  can never both take the same room. A hold that does not fit raises `NoRoom` and changes
  nothing.
* **Converted, or released.** `commit(delta)` moves the upload's real size change into
  `used_bytes` and deletes the reservation in one transaction, so the room is never counted
  twice or not at all. `release()` deletes it (a failed, refused or abandoned upload).
* **Never forever.** A reservation expires `RESERVATION_TTL` after it was last held or
  renewed; an upload renews its own every `RENEW_INTERVAL_SECONDS` while bytes arrive. Before
  checking the room, every hold deletes the volume's reservations that expired, and those
  whose process is gone: same host name, boot and pid namespace as the caller, and no process
  with the recorded pid (a gunicorn worker killed by its master's timeout, an OOM kill), the
  rule of repository locks (`backups/engine/locking.py`). So a killed process blocks its room
  until the next upload to the volume from its host, and at most `RESERVATION_TTL` otherwise.
  An upload whose reservation was reclaimed while it stalled holds it again on its next
  renewal if the room is still free, and is refused otherwise.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from backups.engine.locking import process_namespace
from volumes.errors import VolumeNotFound
from volumes.models import UploadReservation, Volume

logger = logging.getLogger(__name__)

RESERVATION_TTL = timedelta(minutes=10)
RENEW_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class Room:
    """A volume's quota as one hold saw it."""

    quota_bytes: int
    used_bytes: int
    reserved_bytes: int  # held by other uploads in progress

    @property
    def available_bytes(self) -> int:
        return max(self.quota_bytes - self.used_bytes - self.reserved_bytes, 0)

    def as_detail(self) -> dict:
        return {"quota_bytes": self.quota_bytes, "used_bytes": self.used_bytes,
                "reserved_bytes": self.reserved_bytes, "available_bytes": self.available_bytes}


class NoRoom(Exception):
    """The volume has not enough free room for the hold; `room` says what it has."""

    def __init__(self, room: Room, wanted: int):
        super().__init__(f"{wanted} bytes wanted, {room.available_bytes} available")
        self.room = room
        self.wanted = wanted


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _reclaim_stale(volume_id, now, keep_pk) -> None:
    """Delete the volume's reservations that expired or whose local process is gone."""
    candidates = UploadReservation.objects.filter(volume_id=volume_id).exclude(pk=keep_pk)
    stale = Q(expires_at__lte=now)
    namespace = process_namespace()
    if namespace:  # unknown namespace: a pid could name another container's process
        local = (candidates.filter(owner_host=socket.gethostname()[:255], owner_namespace=namespace,
                                   expires_at__gt=now).values_list("pk", "owner_pid"))
        dead = [pk for pk, pid in local if not process_alive(pid)]
        if dead:
            stale |= Q(pk__in=dead)
    for reservation in candidates.filter(stale):
        logger.warning("volume %s: reclaiming %d reserved bytes of an upload of %r by %s pid %d (expired or "
                       "process gone)", volume_id, reservation.reserved_bytes, reservation.path,
                       reservation.owner_host, reservation.owner_pid)
        reservation.delete()


class QuotaReservation:
    """The room one upload holds in one volume. One per upload; not shared between threads.

    `clock` returns the current aware datetime (injected by tests); `monotonic` paces renewals.
    """

    def __init__(self, volume: Volume, path: str, *, clock=timezone.now, monotonic=time.monotonic):
        self.volume_id = volume.pk
        self.path = path[:1024]
        self.clock = clock
        self.monotonic = monotonic
        self.pk: int | None = None
        self.held = 0
        self._held_at = 0.0

    def hold(self, wanted: int) -> None:
        """Hold `wanted` bytes in total (more or less than now); raises `NoRoom`, and keeps
        what was held, when they do not fit."""
        if wanted <= 0 and self.pk is None:
            return  # nothing to hold: no row, no transaction
        with transaction.atomic():
            volume = (Volume.objects.select_for_update().only("used_bytes", "size_gb")
                      .filter(pk=self.volume_id).first())
            if volume is None:
                raise VolumeNotFound("The volume was deleted during the upload.")
            now = self.clock()
            _reclaim_stale(self.volume_id, now, self.pk)
            others = (UploadReservation.objects.filter(volume_id=self.volume_id).exclude(pk=self.pk)
                      .aggregate(total=Sum("reserved_bytes"))["total"]) or 0
            room = Room(quota_bytes=volume.quota_bytes, used_bytes=volume.used_bytes, reserved_bytes=others)
            granted = max(wanted, 0)
            if granted > room.available_bytes:
                raise NoRoom(room, granted)
            expires_at = now + RESERVATION_TTL
            renewed = self.pk is not None and UploadReservation.objects.filter(pk=self.pk).update(
                reserved_bytes=granted, expires_at=expires_at)
            if not renewed:  # first hold, or reclaimed while the upload stalled
                self.pk = UploadReservation.objects.create(
                    volume_id=self.volume_id, reserved_bytes=granted, path=self.path,
                    owner_host=socket.gethostname()[:255], owner_namespace=process_namespace(), owner_pid=os.getpid(),
                    created_at=now, expires_at=expires_at).pk
        self.held = granted
        self._held_at = self.monotonic()

    def ensure(self, needed: int) -> None:
        """Hold at least `needed` bytes right now: grow the reservation if it is smaller, or
        hold again if it was reclaimed while the upload stalled. Raises `NoRoom`."""
        if needed <= 0:
            return
        if needed <= self.held and self._touch():
            return
        self.hold(needed)

    def renew_if_due(self) -> None:
        """Push the expiry back when `RENEW_INTERVAL_SECONDS` passed since the last renewal."""
        if self.pk is None or self.monotonic() - self._held_at < RENEW_INTERVAL_SECONDS:
            return
        if not self._touch():
            logger.warning("volume %s: the reservation of %r was reclaimed while its upload stalled; holding again",
                           self.volume_id, self.path)
            self.hold(self.held)

    def _touch(self) -> bool:
        """Push the expiry back without checking the room; False when the row is gone."""
        if self.pk is None:
            return False
        touched = UploadReservation.objects.filter(pk=self.pk).update(expires_at=self.clock() + RESERVATION_TTL)
        if touched:
            self._held_at = self.monotonic()
        return bool(touched)

    def commit(self, delta: int) -> None:
        """The upload is in place: add `delta` (new size minus replaced size) to `used_bytes`
        and drop the reservation, in one transaction. The caller held at least `delta`."""
        with transaction.atomic():
            # The volume row first, as in `hold`: both take their locks in the same order.
            if delta:
                Volume.objects.filter(pk=self.volume_id).update(used_bytes=F("used_bytes") + delta)
            if self.pk is not None:
                UploadReservation.objects.filter(pk=self.pk).delete()
        self.pk = None
        self.held = 0

    def release(self) -> None:
        """Give the room back (the upload failed or was refused). Never raises: a reservation
        that cannot be deleted now (the database is down) expires on its own."""
        if self.pk is None:
            return
        try:
            UploadReservation.objects.filter(pk=self.pk).delete()
        except DatabaseError as error:
            logger.warning("volume %s: could not release the reservation of %r (%s); it expires within %s",
                           self.volume_id, self.path, error.__class__.__name__, RESERVATION_TTL)
        self.pk = None
        self.held = 0
