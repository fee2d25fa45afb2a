"""The directory pool driver and the usage walk."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from volumes import services
from volumes.errors import PoolError
from volumes.models import Volume
from volumes.pools import DirectoryPool, get_pool


def test_directory_pool_create_delete_usage_are_idempotent(tmp_path):
    pool = DirectoryPool("test", tmp_path / "root")
    volume_id = uuid.uuid4()
    path = pool.create(volume_id)
    assert path == tmp_path / "root" / str(volume_id) and path.is_dir()
    assert pool.create(volume_id) == path  # empty storage already there: fine
    (path / "sub").mkdir()
    (path / "sub" / "a").write_bytes(b"a" * 7)
    os.symlink("/etc/passwd", path / "link")
    assert pool.usage(volume_id) == 7
    with pytest.raises(PoolError):
        pool.create(volume_id)  # not empty any more: refuse to adopt someone's data
    pool.delete(volume_id)
    assert not path.exists()
    pool.delete(volume_id)  # already gone counts as deleted
    assert pool.usage(volume_id) == 0


def test_delete_does_not_follow_symlinks_out_of_the_volume(tmp_path):
    pool = DirectoryPool("test", tmp_path / "root")
    volume_id = uuid.uuid4()
    path = pool.create(volume_id)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"keep")
    os.symlink(outside, path / "escape")
    pool.delete(volume_id)
    assert (outside / "precious").read_bytes() == b"keep"


def test_unknown_pool_is_an_error(settings):
    with pytest.raises(PoolError):
        get_pool("nowhere")
    settings.VOLUME_POOLS = {"fast": "/tmp/fast-pool"}
    assert get_pool("fast").resolve_path("x") == Path("/tmp/fast-pool/x")


@pytest.mark.django_db
def test_pool_failure_leaves_the_volume_in_error_with_a_message(settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    settings.VOLUME_ROOT = blocker  # a file: the pool cannot make folders below it
    volume = services.create_volume({"name": "broken", "size_gb": 1})
    assert volume.status == "error"
    assert "Cannot create the pool root" in volume.status_message
    assert Volume.objects.get(name="broken").status == "error"


@pytest.mark.django_db
def test_refresh_usage_stores_the_walked_size(make_volume):
    volume = make_volume("walked", files={"a": b"x" * 10, "d/b": b"y" * 5})
    Volume.objects.filter(pk=volume.pk).update(used_bytes=999)
    assert services.refresh_usage(volume) == 15
    assert Volume.objects.get(pk=volume.pk).used_bytes == 15
