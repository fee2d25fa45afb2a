"""The one walk over snapshot trees, shared by verify, prune and any other full traversal.

`walk_trees(root, read, seen=)` visits every tree reachable from `root` depth-first, each
tree once per `seen` set (pass the same set for several roots, and a tree shared by many
snapshots is read once). Reading goes through `read(tree_id)`, normally
`Repository.read_tree`, whose pack cache serves the many small trees a backup packed
together; the caller's `read` decides what a missing or damaged tree means: raise to stop
the walk (prune), or return None to note it and skip its subtrees (verify).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from .tree import TreeEntry


def walk_trees(root: bytes, read: Callable[[bytes], list[TreeEntry] | None], *,
               seen: set[bytes] | None = None) -> Iterator[tuple[bytes, list[TreeEntry] | None]]:
    """Yield `(tree id, entries)` for every tree reachable from `root` not yet in `seen`
    (which the walk fills). `entries` is None when `read` returned None; that tree's
    subtrees are not visited."""
    seen = set() if seen is None else seen
    stack = [root]
    while stack:
        tree_id = stack.pop()
        if tree_id in seen:
            continue
        seen.add(tree_id)
        entries = read(tree_id)
        yield tree_id, entries
        if entries is not None:
            stack.extend(entry.subtree for entry in entries if entry.type == "dir" and entry.subtree is not None)
