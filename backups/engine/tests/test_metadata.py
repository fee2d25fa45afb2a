"""Extended attributes (user, security, POSIX ACLs), FIFOs and device nodes round-trip."""

from __future__ import annotations

import errno
import json
import os
import stat
import struct
import tempfile

import pytest

from backups import engine
from backups.engine.format import BlobType
from backups.engine.tree import TREE_VERSION, TREE_VERSION_EXTENDED, decode_tree

from .helpers import KEY, LOCAL_ONLY, craft_snapshot, file_entry, new_repository, snapshot_tree

_ROOT = os.geteuid() == 0
_ACL_UNDEFINED = 0xFFFFFFFF
# POSIX ACL xattr tags and the binary layout the kernel uses (version 2, then entries of
# tag u16, permissions u16, id u32), sorted by tag then id as the kernel requires.
_USER_OBJ, _USER, _GROUP_OBJ, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x10, 0x20


def posix_acl(*entries: tuple[int, int, int]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


ACCESS_ACL = posix_acl((_USER_OBJ, 6, _ACL_UNDEFINED), (_USER, 4, 4321),
                       (_GROUP_OBJ, 4, _ACL_UNDEFINED), (_MASK, 4, _ACL_UNDEFINED),
                       (_OTHER, 0, _ACL_UNDEFINED))
DEFAULT_ACL = posix_acl((_USER_OBJ, 7, _ACL_UNDEFINED), (_GROUP_OBJ, 5, _ACL_UNDEFINED),
                        (_OTHER, 5, _ACL_UNDEFINED))


def _supports_xattrs(directory: str) -> bool:
    probe = os.path.join(directory, ".xattr-probe")
    with open(probe, "wb"):
        pass
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError as error:
        if error.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return False
        raise
    finally:
        os.unlink(probe)


@pytest.fixture
def xattr_dir(tmp_path):
    """A directory on a file system with user xattrs: tmp_path, else one under /var/tmp
    (tmpfs may refuse user.*). Fails, never skips, when neither supports them."""
    if _supports_xattrs(str(tmp_path)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="engine-xattrs-") as name:
        if not _supports_xattrs(name):
            pytest.fail("no directory with user extended attributes: tried "
                        f"{tmp_path} and /var/tmp")
        import pathlib
        yield pathlib.Path(name)


def xattrs_of(path) -> dict[str, bytes]:
    return {name: os.getxattr(path, name, follow_symlinks=False)
            for name in sorted(os.listxattr(path, follow_symlinks=False))}


def make_source(source) -> None:
    (source / "dir").mkdir(parents=True)
    (source / "plain.txt").write_bytes(b"no attributes")
    (source / "tagged.txt").write_bytes(b"with attributes" * 100)
    os.setxattr(source / "tagged.txt", "user.comment", b"hello \x00 binary \xff")
    os.setxattr(source / "tagged.txt", "user.empty", b"")
    os.setxattr(source / "tagged.txt", "system.posix_acl_access", ACCESS_ACL)
    os.link(source / "tagged.txt", source / "dir" / "tagged-link.txt")
    os.setxattr(source / "dir", "system.posix_acl_default", DEFAULT_ACL)
    os.setxattr(source / "dir", "user.dir-note", b"a directory")
    os.mkfifo(source / "dir" / "pipe", 0o640)
    os.setxattr(source / "dir" / "pipe", "trusted.pipe-note", b"root-only namespace")
    if _ROOT:
        os.setxattr(source / "tagged.txt", "security.engine-test", b"label")
        os.mknod(source / "null", 0o620 | stat.S_IFCHR, os.makedev(1, 3))
        os.mknod(source / "dir" / "loop", 0o600 | stat.S_IFBLK, os.makedev(7, 200))
    for path in (source / "dir" / "pipe", source / "dir", source):
        os.utime(path, ns=(1_600_000_000_000_000_001, 1_600_000_000_000_000_001))


def attributes_of_tree(root) -> dict:
    return {os.path.relpath(os.path.join(directory, name), root): xattrs_of(
        os.path.join(directory, name))
        for directory, dirs, files in os.walk(root) for name in dirs + files}


def test_xattrs_acls_fifos_and_devices_round_trip(xattr_dir, any_backend):
    source, target = xattr_dir / "source", xattr_dir / "target"
    make_source(source)
    repo = engine.Repository.init(any_backend, KEY)
    result = repo.backup(source)
    assert result.warnings == []
    assert result.stats["specials"] == (3 if _ROOT else 1)
    restored = repo.restore(result.snapshot_id, target)
    assert restored.warnings == []
    assert restored.specials == (3 if _ROOT else 1)

    assert snapshot_tree(target) == snapshot_tree(source)
    assert attributes_of_tree(target) == attributes_of_tree(source)
    assert os.getxattr(target / "tagged.txt", "user.comment") == b"hello \x00 binary \xff"
    assert os.getxattr(target / "tagged.txt", "system.posix_acl_access") == ACCESS_ACL
    assert os.getxattr(target / "dir", "system.posix_acl_default") == DEFAULT_ACL
    assert stat.S_ISFIFO(os.lstat(target / "dir" / "pipe").st_mode)
    assert os.stat(target / "tagged.txt").st_ino == \
        os.stat(target / "dir" / "tagged-link.txt").st_ino
    if _ROOT:
        assert os.getxattr(target / "tagged.txt", "security.engine-test") == b"label"
        null = os.lstat(target / "null")
        assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
        loop = os.lstat(target / "dir" / "loop")
        assert stat.S_ISBLK(loop.st_mode) and loop.st_rdev == os.makedev(7, 200)
    # The ACL kept its named user; the mode's group bits are the ACL mask.
    assert stat.S_IMODE(os.stat(target / "tagged.txt").st_mode) == \
        stat.S_IMODE(os.stat(source / "tagged.txt").st_mode)


@LOCAL_ONLY
def test_attribute_change_alone_is_backed_up_and_plain_trees_stay_version_1(
        xattr_dir, any_backend):
    source = xattr_dir / "source"
    (source / "plain").mkdir(parents=True)
    (source / "plain" / "a.txt").write_bytes(b"a")
    (source / "b.txt").write_bytes(b"b")
    repo = engine.Repository.init(any_backend, KEY)
    first = repo.backup(source)
    root = repo.load_snapshot(first.snapshot_id).tree
    assert json.loads(repo.read_blob(bytes.fromhex(root), BlobType.TREE))["version"] \
        == TREE_VERSION

    os.setxattr(source / "b.txt", "user.added", b"later")  # content and mtime unchanged
    second = repo.backup(source)
    # The ctime moved, so b.txt is read again (as a changed file); a.txt is reused.
    assert (second.stats["files_reused"], second.stats["files_read"]) == (1, 1)
    root = repo.load_snapshot(second.snapshot_id).tree
    document = json.loads(repo.read_blob(bytes.fromhex(root), BlobType.TREE))
    assert document["version"] == TREE_VERSION_EXTENDED
    plain = next(e for e in document["entries"] if e["name"] == "plain")
    assert json.loads(repo.read_blob(bytes.fromhex(plain["subtree"]), BlobType.TREE))[
        "version"] == TREE_VERSION  # an untouched directory keeps its version-1 tree
    repo.restore(second.snapshot_id, xattr_dir / "target")
    assert os.getxattr(xattr_dir / "target" / "b.txt", "user.added") == b"later"

    third = repo.backup(source)
    assert repo.load_snapshot(third.snapshot_id).tree == root  # unchanged: same tree


def test_old_version_1_trees_still_restore_and_bad_attributes_are_refused(tmp_path):
    repo = new_repository(tmp_path / "repo")
    old = craft_snapshot(repo, {"version": 1, "entries": [file_entry("old.txt")]})
    repo.restore(old, tmp_path / "old")
    assert (tmp_path / "old" / "old.txt").read_bytes() == b""

    for bad in ({"user.x": "not base64!"}, {"": "AA=="}, ["user.x"], {"user.x": 5}):
        document = {"version": 2, "entries": [file_entry("f", xattrs=bad)]}
        with pytest.raises(engine.FormatError, match="extended attribute"):
            decode_tree(json.dumps(document).encode())
    device = {"version": 2, "entries": [{**file_entry("d"), "type": "chardev", "rdev": -1}]}
    with pytest.raises(engine.FormatError, match="rdev"):
        decode_tree(json.dumps(device).encode())
    for kind in ("socket", "door"):
        with pytest.raises(engine.FormatError, match="unknown type"):
            decode_tree(json.dumps({"version": 2, "entries": [
                {**file_entry("s"), "type": kind}]}).encode())
    fifo_in_version_1 = {"version": 1, "entries": [{**file_entry("p"), "type": "fifo"}]}
    with pytest.raises(engine.FormatError, match="unknown type"):
        decode_tree(json.dumps(fifo_in_version_1).encode())
    with pytest.raises(engine.FormatError, match="version 3"):
        decode_tree(json.dumps({"version": 3, "entries": []}).encode())
