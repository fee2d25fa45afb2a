"""Disaster-recovery CLI: `python -m backups.engine VERB --repo REPO --key-file KEYFILE ...`.

Usable with no platform database. Every command opens the repository, delegates to the
engine and prints a result; any `EngineError` becomes one line on stderr and its
`exit_code` (never a traceback). Progress is drawn on stderr only when it is a terminal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

from . import errors
from .backends import open_backend
from .keys import load_key_encryption_key
from .memory import tune_malloc
from .repository import Repository


class _TerminalProgress:
    """Draws `done/total MB` on one stderr line, at most 4 times a second."""

    def __init__(self, verb: str):
        self.verb = verb
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, done: int, total: int, message: str) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        percent = f" {100 * done / total:5.1f}%" if total else ""
        line = (f"\r{self.verb}: {done / 1e6:,.0f}/{total / 1e6:,.0f} MB{percent} "
                f"{done / 1e6 / elapsed:,.0f} MB/s")
        sys.stderr.write(line[:120].ljust(60))
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")


def _progress(verb: str):
    return _TerminalProgress(verb) if sys.stderr.isatty() else None


# The platform tags every backup with the volume's name (backups/runners/backup.py), so a
# repository read without the platform database still says which volume a snapshot holds.
VOLUME_NAME_TAG = "volume-name:"


def volume_name(info) -> str | None:
    """The volume name a snapshot carries in its `volume-name:<name>` tag, if any."""
    return next((tag[len(VOLUME_NAME_TAG):] for tag in info.tags if tag.startswith(VOLUME_NAME_TAG)), None)


def _read_key(path: str | None):
    if not path:
        raise errors.KeyMissing("no key file given (--key-file)")
    try:
        with open(path, "rb") as handle:
            secret = handle.read()
    except OSError as error:
        raise errors.KeyMissing(f"cannot read key file {path}: {error.strerror}") from None
    text_secret = secret.strip() if len(secret) != 32 else secret
    return load_key_encryption_key(text_secret)


def _backend(arguments, location: str | None = None):
    """The backend of `--repo` (or of `location`), paced by `--limit-upload` /
    `--limit-download` (KiB/s)."""
    return open_backend(location or arguments.repo, upload_limit=(arguments.limit_upload or 0) * 1024,
                        download_limit=(arguments.limit_download or 0) * 1024)


def _open(arguments) -> Repository:
    return Repository.open(_backend(arguments), _read_key(arguments.key_file))


def _print_json(document) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def _report(value):
    """A JSON-able view of a result object from verify.py/prune.py/retention.py."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses
        return dataclasses.asdict(value)
    return value


# --- verbs ---------------------------------------------------------------------------------------
def _retention(arguments):
    """The S3 Object Lock asked for with --lock-mode / --lock-days (both or neither)."""
    if arguments.lock_mode is None and arguments.lock_days is None:
        return None
    if arguments.lock_mode is None or arguments.lock_days is None:
        raise errors.InvalidObjectLock("--lock-mode and --lock-days go together")
    from .objectlock import Retention

    return Retention.for_days(arguments.lock_mode, arguments.lock_days)


def command_init(arguments) -> int:
    related_to = None
    if arguments.from_repo:
        if not arguments.from_key_file:
            raise errors.KeyMissing("--from-repo needs --from-key-file")
        related_to = Repository.open(_backend(arguments, arguments.from_repo),
                                     _read_key(arguments.from_key_file))
    repo = Repository.init(_backend(arguments), _read_key(arguments.key_file),
                           related_to=related_to)
    relation = f" (related to {related_to.backend.location})" if related_to else ""
    print(f"created repository {repo.config['id']} at {repo.backend.location}{relation}")
    return 0


def command_copy(arguments) -> int:
    source = _open(arguments)
    target = Repository.open(_backend(arguments, arguments.to_repo), _read_key(arguments.to_key_file))
    progress = _progress("copy")
    try:
        result = source.copy_to(target, arguments.snapshot or None, progress=progress,
                                retention=_retention(arguments))
    finally:
        if progress:
            progress.close()
    if arguments.json:
        _print_json(result.to_json())
        return 0
    for source_id, target_id in result.copied.items():
        suffix = "" if source_id == target_id else f" as {target_id[:8]}"
        print(f"copied snapshot {source_id[:8]}{suffix}")
    print(f"{len(result.copied)} snapshots copied, {len(result.skipped)} already in the target; "
          f"{result.blobs_copied} blobs, {result.bytes_copied / 1e6:,.1f} MB stored in "
          f"{result.duration_seconds} s")
    return 0


def command_backup(arguments) -> int:
    repo = _open(arguments)
    progress = _progress("backup")
    try:
        result = repo.backup(arguments.source_dir, source=arguments.source, tags=arguments.tag,
                             parent=None if arguments.no_parent else "auto", progress=progress,
                             retention=_retention(arguments))
    finally:
        if progress:
            progress.close()
    if arguments.json:
        _print_json({"id": result.snapshot_id, "stats": result.stats,
                     "warnings": result.warnings})
    else:
        stats = result.stats
        print(f"snapshot {result.snapshot_id} saved: {stats['files']} files, "
              f"{stats['bytes_total'] / 1e6:,.1f} MB, {stats['bytes_read'] / 1e6:,.1f} MB read, "
              f"{stats['bytes_stored'] / 1e6:,.1f} MB stored, {stats['duration_seconds']} s")
        for warning in result.warnings:
            print(f"warning: {warning}", file=sys.stderr)
    return 0


def command_snapshots(arguments) -> int:
    repo = _open(arguments)
    found = repo.snapshots(source=arguments.source, tags=arguments.tag)
    if arguments.json:
        _print_json([{**info.to_json(), "volume_name": volume_name(info)} for info in found])
        return 0
    rows = [(info.short_id, f"{info.time.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M:%S}", volume_name(info) or "-",
             info.source, ",".join(tag for tag in info.tags if not tag.startswith(VOLUME_NAME_TAG)))
            for info in found]
    header = ("ID", "TIME (UTC)", "VOLUME", "SOURCE", "TAGS")
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


def command_restore(arguments) -> int:
    repo = _open(arguments)
    progress = _progress("restore")
    try:
        result = repo.restore(arguments.snapshot, arguments.target_dir, sub_path=arguments.path,
                              progress=progress)
    finally:
        if progress:
            progress.close()
    print(f"restored snapshot {result.snapshot_id[:8]}: {result.files} files, {result.dirs} "
          f"dirs, {result.bytes_written / 1e6:,.1f} MB in {result.duration_seconds} s")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def command_verify(arguments) -> int:
    repo = _open(arguments)
    percent = 100.0 if arguments.read_data else float(arguments.read_data_percent or 0.0)
    if not 0.0 <= percent <= 100.0:
        raise errors.EngineError("--read-data-percent must be between 0 and 100")
    progress = _progress("verify")
    try:
        report = repo.verify(read_data_percent=percent, progress=progress)
    finally:
        if progress:
            progress.close()
    document = _report(report)
    _print_json(document)
    ok = getattr(report, "ok", None)
    if ok is None and isinstance(document, dict):
        ok = document.get("ok", True)
    return 0 if ok else errors.DataIntegrityError.exit_code


def command_prune(arguments) -> int:
    from .retention import RetentionPolicy
    repo = _open(arguments)
    policy_fields = {name: getattr(arguments, name) for name in
                     ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly",
                      "keep_yearly", "keep_within") if getattr(arguments, name) is not None}
    policy = RetentionPolicy(**policy_fields)
    forget = repo.forget(policy, source=arguments.source, dry_run=arguments.dry_run)
    pruned = repo.prune(dry_run=arguments.dry_run, progress=_progress("prune"))
    _print_json({"dry_run": arguments.dry_run, "forget": _report(forget),
                 "prune": _report(pruned)})
    return 0


def command_key(arguments) -> int:
    repo = _open(arguments)
    if arguments.key_command == "add":
        name = repo.add_key(_read_key(arguments.new_key_file))
        print(f"added {name}")
    elif arguments.key_command == "remove":
        repo.remove_key(arguments.name)
        print(f"removed {arguments.name}")
    else:
        for key in repo.list_keys():
            print(f"{'*' if key['current'] else ' '} {key['name']}  {key['kdf']}  "
                  f"{key['created']}")
    return 0


def command_stats(arguments) -> int:
    _print_json(_open(arguments).stats().to_json())
    return 0


def command_repair_orphans(arguments) -> int:
    from .orphans import remove_orphan_objects
    report = remove_orphan_objects(_open(arguments), dry_run=arguments.dry_run)
    _print_json(report.to_json())
    return 0


def _kibibytes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of KiB/s: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a bandwidth limit must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m backups.engine",
                                     description="Backup engine disaster-recovery CLI.")
    # Global (before the verb), as in restic: 0 or absent = unlimited.
    parser.add_argument("--limit-upload", type=_kibibytes, default=0, metavar="KIB",
                        help="limit uploads to the repository to KIB KiB/s")
    parser.add_argument("--limit-download", type=_kibibytes, default=0, metavar="KIB",
                        help="limit downloads from the repository to KIB KiB/s")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--repo", required=True,
                        help="repository directory or s3://bucket/prefix")
    common.add_argument("--key-file", required=True,
                        help="file holding the key-encryption secret")
    verbs = parser.add_subparsers(dest="verb", required=True)

    init = verbs.add_parser("init", parents=[common], help="create a repository")
    init.add_argument("--from-repo", help="make a replica: hold this repository's master key "
                      "(and chunker settings), so `copy` into the new one skips what it has "
                      "and keeps snapshot ids")
    init.add_argument("--from-key-file", help="key file of --from-repo")

    copy = verbs.add_parser("copy", parents=[common],
                            help="copy snapshots the target lacks into another repository")
    copy.add_argument("snapshot", nargs="*", help="snapshot ids, unique prefixes or 'latest' "
                      "(default: every snapshot)")
    copy.add_argument("--to-repo", required=True, help="target repository")
    copy.add_argument("--to-key-file", required=True, help="key file of the target")
    _lock_arguments(copy, "each copy in the target and everything it needs there")
    copy.add_argument("--json", action="store_true")

    backup = verbs.add_parser("backup", parents=[common], help="back up a directory")
    backup.add_argument("source_dir")
    backup.add_argument("--tag", action="append", default=[])
    backup.add_argument("--source", help="source name (default: absolute path); the parent "
                        "is the latest snapshot with the same source")
    backup.add_argument("--no-parent", action="store_true", help="read every file")
    _lock_arguments(backup, "the snapshot and everything it needs")
    backup.add_argument("--json", action="store_true")

    snapshots = verbs.add_parser("snapshots", parents=[common], help="list snapshots")
    snapshots.add_argument("--json", action="store_true")
    snapshots.add_argument("--source")
    snapshots.add_argument("--tag", action="append", default=[])

    restore = verbs.add_parser("restore", parents=[common], help="restore a snapshot")
    restore.add_argument("snapshot", help="snapshot id, unique prefix, or 'latest'")
    restore.add_argument("target_dir")
    restore.add_argument("--path", help="restore only this path of the snapshot")

    verify = verbs.add_parser("verify", parents=[common], help="check the repository")
    group = verify.add_mutually_exclusive_group()
    group.add_argument("--read-data", action="store_true", help="read and authenticate all data")
    group.add_argument("--read-data-percent", type=float, metavar="N")

    prune = verbs.add_parser("prune", parents=[common],
                             help="apply retention and remove unreferenced data")
    for name in ("last", "hourly", "daily", "weekly", "monthly", "yearly"):
        prune.add_argument(f"--keep-{name}", type=int, metavar="N")
    prune.add_argument("--keep-within", metavar="DURATION", help="e.g. 7d, 12h, 2w")
    prune.add_argument("--source", help="apply retention only to this source")
    prune.add_argument("--dry-run", action="store_true")

    key = verbs.add_parser("key", help="manage wrapped repository keys")
    key_verbs = key.add_subparsers(dest="key_command", required=True)
    key_verbs.add_parser("list", parents=[common])
    add = key_verbs.add_parser("add", parents=[common])
    add.add_argument("--new-key-file", required=True)
    remove = key_verbs.add_parser("remove", parents=[common])
    remove.add_argument("name", help="keys/<id> as shown by `key list`")

    verbs.add_parser("stats", parents=[common], help="repository totals")

    repair = verbs.add_parser("repair-orphans", parents=[common],
                              help="remove index objects and snapshots sealed with an orphan "
                                   "key (see docs/runbook.md)")
    repair.add_argument("--dry-run", action="store_true", help="only list them")
    return parser


def _lock_arguments(parser, what: str) -> None:
    parser.add_argument("--lock-mode", choices=["governance", "compliance"],
                        help=f"S3 Object Lock {what} (needs a bucket with Object Lock; with --lock-days)")
    parser.add_argument("--lock-days", type=int, metavar="N", help="days the lock lasts")


COMMANDS = {"init": command_init, "copy": command_copy, "backup": command_backup, "snapshots": command_snapshots,
            "restore": command_restore, "verify": command_verify, "prune": command_prune,
            "key": command_key, "stats": command_stats,
            "repair-orphans": command_repair_orphans}


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    tune_malloc()
    # File names are arbitrary bytes (surrogate-escaped): print them escaped rather than
    # fail a finished backup on the message that reports it.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return COMMANDS[arguments.verb](arguments)
    except errors.EngineError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`--json | head`): not an error worth a message.
        # Python's documented way out: stdout onto /dev/null (so the flush at exit cannot
        # fail again) and status 1.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as error:
        print(f"error: {error.strerror or error}"
              f"{': ' + os.fsdecode(error.filename) if error.filename else ''}", file=sys.stderr)
        return 1
    except Exception as error:  # the last line of defence: one line, never a traceback
        print(f"error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 1
