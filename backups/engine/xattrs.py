"""Extended attributes of one path: read at backup, applied at restore.

Every namespace the kernel lists is kept: `user.*`, `security.*` (SELinux labels, file
capabilities), `trusted.*` (visible to root only) and POSIX ACLs, which Linux exposes as
`system.posix_acl_access` and `system.posix_acl_default` (directories). Values are raw
bytes, stored exactly as read.

Reading never fails a backup: a file system without xattr support gives no attributes, and
an attribute that vanishes between listing and reading is left out. Applying reports what
the target refuses (e.g. `security.*` without privilege, or a file system without user
xattrs) as warnings; the data is restored either way.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable

#: errno values meaning "this file system or file has no (such) extended attributes".
_UNSUPPORTED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA, errno.EPERM}


def read_xattrs(path: bytes, warn: Callable[[str], None]) -> dict[str, bytes] | None:
    """The extended attributes of `path` (not following a symlink), or None when it has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as error:
        if error.errno not in _UNSUPPORTED and error.errno != errno.ENOENT:
            warn(f"{os.fsdecode(path)}: cannot list extended attributes: {error.strerror}")
        return None
    if not names:
        return None
    xattrs = {}
    for name in sorted(names):
        try:
            xattrs[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as error:
            if error.errno != errno.ENODATA:  # removed meanwhile: nothing to keep
                warn(f"{os.fsdecode(path)}: cannot read extended attribute {name}: "
                     f"{error.strerror}")
    return xattrs or None


def apply_xattrs(path: bytes | int, xattrs: dict[str, bytes] | None, shown: str,
                 warn: Callable[[str], None]) -> None:
    """Set every attribute on `path` (a path, not followed if a symlink, or a descriptor)."""
    if not xattrs:
        return
    follow = isinstance(path, int)
    for name, value in xattrs.items():
        try:
            if follow:
                os.setxattr(path, name, value)
            else:
                os.setxattr(path, name, value, follow_symlinks=False)
        except OSError as error:
            warn(f"{shown}: extended attribute {name} not restored: {error.strerror}")
