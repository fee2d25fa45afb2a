"""The storage interface of the repository: a flat namespace of immutable objects.

Contracts every backend keeps (and `backups/engine/tests/test_backend_contract.py` checks on
every implementation):

* Names are relative, '/'-separated, of the form `<type>/<name>` or `<type>/<xx>/<name>`
  (`config`, `keys/<id>`, `data/ab/<id>`, `index/<id>`, `snapshots/<id>`, `locks/<id>`).
  A backend never interprets them beyond mapping them to its own keys.
* `put(name, data)` is atomic: a reader sees either no object or the whole object, never a
  prefix. On local disk the data is fsynced before it becomes visible (write to a temporary
  name, fsync, rename, fsync the directory). Objects are content-addressed, so putting the
  same name twice with the same bytes is harmless and a retried put is always safe.
* `get(name, offset=0, length=None)` returns exactly `length` bytes from `offset` (or to the
  end); a short read is an error (`ObjectCorrupt`), a missing object `ObjectNotFound`.
* `create(name, data)` is `put` that never replaces: it stores the object only if no object
  of that name exists, atomically with respect to concurrent `create`s (exclusive hard link
  on local disk, `If-None-Match: *` on S3), and answers whether it stored it. Only the
  repository `config` is written this way: it is the one object whose name is not derived
  from its content, so two processes initialising the same location race for it. A retried
  `create` whose first attempt succeeded unseen answers False: callers read the object back
  to learn whose it is.
* `list(prefix)` yields every name under `prefix` (a type directory like `"data/"`), each once,
  in no particular order, across any number of pages.
* `delete(name)` removes the object; deleting a missing object is not an error (prune may
  be retried).
* `exists(name)` and `size(name)` (`ObjectNotFound` when missing).
* `spool()` gives a scratch file for an object written piece by piece (a pack), and
  `put_spool(name, spool)` stores its whole content under `name` with `put`'s guarantees.
  The default spool is an anonymous temporary file that `put_spool` reads back and `put`s;
  a backend that can do better overrides both (local disk renames the spool into place, S3
  streams it). Either way the object's bytes are never all in memory while it is written.
  Retrying `put_spool` is safe; the caller closes the spool afterwards, which removes
  whatever is left of it.
* Object Lock (S3 only; see `objectlock.py`). `put` and `put_spool` take an optional
  `retention` (`objectlock.Retention`): the object is stored locked (it cannot be deleted or
  overwritten) until `retention.until`. `retention(name)` answers the object's current
  retention, or None when it has none (`ObjectNotFound` when missing). `extend_retention(name,
  retention)` lengthens it; it never shortens one (asking for an earlier date is a no-op).
  `object_lock_enabled()` says whether this storage can hold locked objects at all, and
  `check_object_lock()` raises `ObjectLockUnsupported` with the reason when it cannot. A
  backend without Object Lock (local disk) holds no locked object: `retention` answers None,
  `object_lock_enabled` False, and writing or extending a retention raises
  `ObjectLockUnsupported`. `delete` of a locked object raises `ObjectLocked` and changes
  nothing (on a versioned S3 bucket a plain DeleteObject would "succeed" by hiding the
  object behind a delete marker; the backend checks first). A put with a retention is as
  safe to retry as any put.
* Transient failures (network, 5xx, throttling) raise `BackendUnavailable`, which callers
  may retry; everything else is permanent. Retrying is the job of `RetryingBackend`, a
  wrapper, not of each backend.
"""

from __future__ import annotations

import abc
import contextlib
import os
import tempfile
from collections.abc import Iterator

from .errors import ObjectLockUnsupported

#: Writes to a spool are buffered: a pack of many small blobs costs one system call per
#: this many bytes instead of one per blob.
SPOOL_BUFFER_BYTES = 256 * 1024


def retention_arguments(retention) -> dict:
    """`{"retention": retention}`, or nothing when there is none: the keyword is passed only
    when used, so backends and test doubles written before Object Lock keep working."""
    return {} if retention is None else {"retention": retention}


class Spool:
    """A scratch file that an object is written into piece by piece before it is stored.

    `path` is set while the file has a name that must be removed when the spool is closed
    unstored (a backend that renames the file into place clears it).
    """

    def __init__(self, file, path: str | None = None):
        self.file = file
        self.path = path
        self.size = 0

    def write(self, data) -> None:
        self.file.write(data)
        self.size += len(data)

    def rewind(self):
        """The file, flushed and positioned at its start, for reading it back."""
        self.file.flush()
        self.file.seek(0)
        return self.file

    def read_all(self) -> bytes:
        return self.rewind().read()

    def close(self) -> None:
        self.file.close()
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            self.path = None


class Backend(abc.ABC):
    """Abstract object store. See the module docstring for the contract."""

    #: A human description for messages and logs (never contains credentials).
    location: str = ""

    @abc.abstractmethod
    def put(self, name: str, data: bytes, retention=None) -> None: ...

    @abc.abstractmethod
    def create(self, name: str, data: bytes) -> bool: ...

    @abc.abstractmethod
    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes: ...

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]: ...

    @abc.abstractmethod
    def delete(self, name: str) -> None: ...

    @abc.abstractmethod
    def exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def size(self, name: str) -> int: ...

    def spool(self) -> Spool:
        """A new scratch file for `put_spool`: by default anonymous, in the system's
        temporary directory (`TMPDIR`)."""
        return Spool(tempfile.TemporaryFile(prefix="spool-", buffering=SPOOL_BUFFER_BYTES))

    def put_spool(self, name: str, spool: Spool, retention=None) -> None:
        """Store the spool's whole content as `name` (see the module docstring)."""
        self.put(name, spool.read_all(), **retention_arguments(retention))

    # Object Lock: a backend without it holds no locked object (see the module docstring).
    def object_lock_enabled(self) -> bool:
        return False

    def check_object_lock(self) -> None:
        raise ObjectLockUnsupported(f"{self.location or 'this storage'} cannot lock objects: "
                                    "Object Lock needs an S3 bucket created with Object Lock "
                                    "enabled")

    def retention(self, name: str):
        """The object's retention (`objectlock.Retention`) or None."""
        return None

    def extend_retention(self, name: str, retention) -> None:
        self.check_object_lock()

    def close(self) -> None:
        """Release connections; the backend must not be used afterwards."""


class BackendWrapper(Backend):
    """A backend that adds one concern (retries, rate limits, logging) around another.

    Every method passes through to `inner` unless the wrapper overrides it, and attributes
    a wrapper does not have (backend-specific extras such as `LocalBackend.list_temporary`
    or `S3Backend.list_incomplete_uploads`) are looked up on `inner`, so wrappers stack in
    any order without hiding what is underneath.
    """

    def __init__(self, inner: Backend):
        self.inner = inner
        self.location = inner.location

    def put(self, name: str, data: bytes, retention=None) -> None:
        return self.inner.put(name, data, **retention_arguments(retention))

    def create(self, name: str, data: bytes) -> bool:
        return self.inner.create(name, data)

    def get(self, name: str, offset: int = 0, length: int | None = None) -> bytes:
        return self.inner.get(name, offset, length)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, name: str) -> None:
        return self.inner.delete(name)

    def exists(self, name: str) -> bool:
        return self.inner.exists(name)

    def size(self, name: str) -> int:
        return self.inner.size(name)

    def spool(self) -> Spool:
        return self.inner.spool()

    def put_spool(self, name: str, spool: Spool, retention=None) -> None:
        return self.inner.put_spool(name, spool, **retention_arguments(retention))

    def object_lock_enabled(self) -> bool:
        return self.inner.object_lock_enabled()

    def check_object_lock(self) -> None:
        return self.inner.check_object_lock()

    def retention(self, name: str):
        return self.inner.retention(name)

    def extend_retention(self, name: str, retention) -> None:
        return self.inner.extend_retention(name, retention)

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, attribute):
        if attribute == "inner":  # not set yet (failed __init__): avoid endless recursion
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)
