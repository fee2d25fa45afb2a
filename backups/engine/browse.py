"""Browse a snapshot without restoring it: list a directory, stream one file."""

from __future__ import annotations

from collections.abc import Iterator

from .errors import PathNotFound, UnsafePath
from .tree import TreeEntry


def _find(repo, snapshot: str, path: str) -> tuple[TreeEntry | None, bytes]:
    """(entry, tree id of its directory) for `path`; (None, root tree) for "/"."""
    info = repo.resolve_snapshot(snapshot)
    tree_id = bytes.fromhex(info.tree)
    entry = None
    parts = [part for part in (path or "/").split("/") if part not in ("", ".")]
    for position, part in enumerate(parts):
        if part == "..":
            raise UnsafePath("'..' is not allowed in a snapshot path")
        if entry is not None:
            if entry.type != "dir":
                raise PathNotFound(f"not a directory in the snapshot: "
                                   f"{'/'.join(parts[:position])}")
            tree_id = entry.subtree
        entry = next((item for item in repo.read_tree(tree_id) if item.name == part), None)
        if entry is None:
            raise PathNotFound(f"no such path in the snapshot: {path}")
    return entry, tree_id


def list_dir(repo, snapshot: str, path: str = "/") -> list[TreeEntry]:
    """Entries of the directory at `path` ("/" is the snapshot root), sorted by name."""
    entry, tree_id = _find(repo, snapshot, path)
    if entry is not None:
        if entry.type != "dir":
            raise PathNotFound(f"not a directory in the snapshot: {path}")
        tree_id = entry.subtree
    return list(repo.read_tree(tree_id))


def open_file(repo, snapshot: str, path: str) -> Iterator[bytes]:
    """The file's bytes, one authenticated chunk at a time (constant memory).

    Resolution happens now (`PathNotFound` is raised by this call, not on iteration).
    """
    entry, _tree_id = _find(repo, snapshot, path)
    if entry is None or entry.type != "file":
        raise PathNotFound(f"not a regular file in the snapshot: {path}")

    def chunks() -> Iterator[bytes]:
        for blob_id in entry.content:
            yield repo.read_blob(blob_id)

    return chunks()
