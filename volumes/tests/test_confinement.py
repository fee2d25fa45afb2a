"""Properties of path validation: whatever it accepts stays below the volume's root."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from volumes.confinement import split_relative_path
from volumes.errors import InvalidPath

# Paths built from the characters that matter for escapes, plus ordinary ones.
path_text = st.lists(st.sampled_from(list("ab./\\\x00\n%2e") + ["..", "/", "é"]), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(path_text)
def test_accepted_paths_never_leave_the_root(raw_path):
    try:
        components = split_relative_path(raw_path)
    except InvalidPath:
        return
    assert components and all(part not in ("", ".", "..") for part in components)
    assert not any(character in part for part in components for character in "/\\\x00\n")
    root = "/volume-root"
    joined = os.path.normpath(os.path.join(root, *components))
    assert joined.startswith(root + "/")
    assert "/".join(components) == (raw_path[:-1] if raw_path.endswith("/") else raw_path)


@pytest.mark.parametrize("raw_path, expected", [
    ("a", ["a"]), ("a/b/c.txt", ["a", "b", "c.txt"]), ("dir/", ["dir"]), ("..a/b..", ["..a", "b.."]),
    ("名前/ファイル", ["名前", "ファイル"]),
])
def test_ordinary_paths_split_into_components(raw_path, expected):
    assert split_relative_path(raw_path) == expected


def test_root_is_allowed_only_when_asked():
    assert split_relative_path("", allow_root=True) == []
    with pytest.raises(InvalidPath):
        split_relative_path("")
    with pytest.raises(InvalidPath):
        split_relative_path("/", allow_root=True)


def test_length_limits():
    assert split_relative_path("x" * 255) == ["x" * 255]
    with pytest.raises(InvalidPath):
        split_relative_path("x" * 256)
    with pytest.raises(InvalidPath):
        split_relative_path("/".join(["abcdefgh"] * 600))


@pytest.mark.django_db
def test_a_directory_swapped_for_a_symlink_during_uploads_never_lets_a_write_escape(make_volume, tmp_path):
    """One thread keeps replacing `target` with a symlink to an outside folder and back while
    uploads go to `target/file`: the uploads may fail, but none may land outside."""
    import io
    import threading

    from volumes import dataplane
    from volumes.errors import FileNotFound, PathConflict

    volume = make_volume("raced")
    root = os.path.join(volume.path, "target")
    outside = tmp_path / "outside"
    outside.mkdir()
    stop = threading.Event()

    def swap():
        turn = 0
        while not stop.is_set():
            turn += 1
            # The real directory (or one an upload just re-created) steps aside, inside the
            # volume, and a symlink to the outside takes its name for a moment. Each step may
            # lose a race with an upload; that is the point, so errors are ignored.
            for step, arguments in ((os.rename, (root, f"{root}.parked-{turn}")),
                                    (os.symlink, (outside, root)),
                                    (os.unlink, (root,))):
                if step is os.unlink and not os.path.islink(root):
                    continue  # only ever remove our symlink, never an upload's directory
                try:
                    step(*arguments)
                except OSError:
                    pass

    swapper = threading.Thread(target=swap)
    swapper.start()
    written = refused = 0
    try:
        for attempt in range(150):
            try:
                dataplane.write_file(volume, f"target/file-{attempt}", io.BytesIO(b"x"), content_length=1)
                written += 1
            except (InvalidPath, PathConflict, FileNotFound):
                refused += 1
    finally:
        stop.set()
        swapper.join()
    assert list(outside.iterdir()) == []
    assert written + refused == 150
