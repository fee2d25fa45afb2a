"""Who a worker process is, and whether a process recorded as a job's worker still runs."""

from __future__ import annotations

import os
import socket


def pid_namespace() -> str:
    """`ns<inode>` of this process's PID namespace (`ns0` where there is no /proc)."""
    try:
        return f"ns{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc (not Linux): the host name alone must do
        return "ns0"


def worker_identity() -> str:
    """`<host>:<pid>:ns<pid namespace>` of this process. Computed per call: prefork children
    fork after import. The PID namespace tells apart containers that share a host name (host
    networking), whose pids mean nothing to each other."""
    return f"{socket.gethostname()}:{os.getpid()}:{pid_namespace()}"


def dead_local_pid(worker: str) -> int | None:
    """The pid of `worker` when it names a process on this host and in this PID namespace that
    no longer runs; None otherwise (another host, another namespace, alive, or malformed)."""
    parts = worker.rsplit(":", 2)
    if len(parts) != 3:
        return None
    host, pid_text, namespace = parts
    if host != socket.gethostname() or namespace != pid_namespace() or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    return None if process_alive(pid) else pid


def process_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as dead: a killed pool child stays a zombie
    until Celery's main process reaps it, which may be after the redelivered message arrives."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True
