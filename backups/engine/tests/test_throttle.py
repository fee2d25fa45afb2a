"""RateLimitedBackend: token-bucket pacing of put/get, shared across threads."""

from __future__ import annotations

import threading
import time

import pytest

from backups.engine.backends import LocalBackend, RateLimitedBackend, RetryingBackend, open_backend
from backups.engine.backends.throttle import SLICE_BYTES

MIB = 1024 * 1024


class FakeTime:
    """A clock that moves only when someone sleeps; records every sleep."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


@pytest.fixture
def fake_time():
    return FakeTime()


def limited(tmp_path, fake_time, **limits) -> RateLimitedBackend:
    return RateLimitedBackend(LocalBackend(str(tmp_path / "repo")), clock=fake_time.clock,
                              sleep=fake_time.sleep, **limits)


def test_a_put_takes_its_size_divided_by_the_upload_rate_in_slices(tmp_path, fake_time):
    backend = limited(tmp_path, fake_time, upload_bytes_per_second=1 * MIB)
    backend.put("data/aa/pack", b"x" * (4 * MIB))
    assert fake_time.now - 100.0 == pytest.approx(4.0)
    # paced in slices, not one 4 s sleep: a limit below the object size works
    assert len(fake_time.sleeps) == 4 * MIB // SLICE_BYTES
    assert max(fake_time.sleeps) <= SLICE_BYTES / MIB + 1e-9
    assert backend.get("data/aa/pack") == b"x" * (4 * MIB)  # download unlimited: no sleep
    assert fake_time.now - 100.0 == pytest.approx(4.0)


def test_a_spooled_put_is_paced_by_the_spool_size(tmp_path, fake_time):
    backend = limited(tmp_path, fake_time, upload_bytes_per_second=1 * MIB)
    spool = backend.spool()
    spool.write(b"z" * (2 * MIB))
    try:
        backend.put_spool("data/aa/spooled", spool)
    finally:
        spool.close()
    assert fake_time.now - 100.0 == pytest.approx(2.0)
    assert backend.get("data/aa/spooled") == b"z" * (2 * MIB)


def test_a_get_is_paced_by_the_bytes_it_returned(tmp_path, fake_time):
    backend = limited(tmp_path, fake_time, download_bytes_per_second=2 * MIB)
    backend.put("data/aa/pack", b"y" * (3 * MIB))
    assert fake_time.sleeps == []  # upload unlimited
    assert backend.get("data/aa/pack", MIB, MIB) == b"y" * MIB
    assert fake_time.now - 100.0 == pytest.approx(0.5)
    assert backend.get("data/aa/pack") == b"y" * (3 * MIB)
    assert fake_time.now - 100.0 == pytest.approx(2.0)


def test_idle_time_earns_only_a_small_burst(tmp_path, fake_time):
    backend = limited(tmp_path, fake_time, upload_bytes_per_second=1 * MIB)
    fake_time.now += 3600  # an hour idle
    backend.put("data/aa/one", b"z" * (2 * MIB))
    # only the bucket's capacity (1/10 s of the rate) came free; the rest is paced
    assert backend._upload.capacity == pytest.approx(0.1 * MIB)
    assert fake_time.now - 3700.0 == pytest.approx(1.9)


def test_none_or_zero_means_unlimited_and_negative_is_refused(tmp_path, fake_time):
    for limits in ({}, {"upload_bytes_per_second": 0, "download_bytes_per_second": None}):
        backend = limited(tmp_path, fake_time, **limits)
        backend.put("data/aa/free", b"q" * MIB)
        assert backend.get("data/aa/free") == b"q" * MIB
    assert fake_time.sleeps == []
    with pytest.raises(ValueError):
        limited(tmp_path, fake_time, upload_bytes_per_second=-1)


def test_threads_share_one_bucket(tmp_path):
    """Four threads putting 1 MiB each at once: together they are paced like 4 MiB."""
    lock = threading.Lock()
    waits: list[float] = []

    def frozen_clock() -> float:  # no time passes: every reservation adds to one shared debt
        return 0.0

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    backend = RateLimitedBackend(LocalBackend(str(tmp_path / "repo")), upload_bytes_per_second=MIB,
                                 clock=frozen_clock, sleep=record)
    threads = [threading.Thread(target=backend.put, args=(f"data/aa/{n}", b"t" * MIB)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Each slice waits for the whole debt reserved before it, whichever thread it came from:
    # the waits are exactly 1, 2, ..., 64 slices' worth, and the last one is 4 MiB at 1 MiB/s.
    slice_seconds = SLICE_BYTES / MIB
    assert sorted(waits) == pytest.approx([slice_seconds * n for n in range(1, 4 * MIB // SLICE_BYTES + 1)])
    assert max(waits) == pytest.approx(4.0)
    assert all(backend.exists(f"data/aa/{n}") for n in range(4))


def test_extras_of_the_inner_backend_pass_through(tmp_path, fake_time):
    inner = RetryingBackend(LocalBackend(str(tmp_path / "repo")))
    backend = RateLimitedBackend(inner, upload_bytes_per_second=MIB, clock=fake_time.clock,
                                 sleep=fake_time.sleep)
    assert backend.retries == 0 and backend.location == inner.location
    with pytest.raises(AttributeError):
        backend.no_such_attribute


def test_open_backend_wraps_the_limits_inside_the_retries(tmp_path):
    backend = open_backend(str(tmp_path / "repo"), upload_limit=4 * MIB, download_limit=0)
    assert isinstance(backend, RetryingBackend)
    assert isinstance(backend.inner, RateLimitedBackend)
    assert backend.inner.upload_bytes_per_second == 4 * MIB
    assert backend.inner.download_bytes_per_second is None
    assert not isinstance(open_backend(str(tmp_path / "repo")).inner, RateLimitedBackend)


def test_two_mebibytes_at_four_mebibytes_per_second_take_about_half_a_second(tmp_path):
    backend = RateLimitedBackend(LocalBackend(str(tmp_path / "repo")), upload_bytes_per_second=4 * MIB)
    started = time.monotonic()
    backend.put("data/aa/real", b"r" * (2 * MIB))
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed <= 1.5, elapsed


def test_the_cli_global_limits_are_kibibytes_per_second(tmp_path):
    from backups.engine.cli import _backend, build_parser

    arguments = build_parser().parse_args(["--limit-upload", "512", "--limit-download", "0", "stats",
                                           "--repo", str(tmp_path / "repo"), "--key-file", "k"])
    backend = _backend(arguments)
    assert backend.inner.upload_bytes_per_second == 512 * 1024
    assert backend.inner.download_bytes_per_second is None
    unlimited = _backend(build_parser().parse_args(["stats", "--repo", str(tmp_path / "r"), "--key-file", "k"]))
    assert not isinstance(unlimited.inner, RateLimitedBackend)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--limit-upload", "-1", "stats", "--repo", "r", "--key-file", "k"])
