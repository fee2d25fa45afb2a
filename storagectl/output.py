"""How storagectl prints: rich tables and key/value panels for people, JSON for scripts, a
progress bar for jobs and transfers on a terminal, and one error line on stderr."""

from __future__ import annotations

import datetime
import json
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

# Results go to stdout; progress and messages to stderr, so `--json | jq` stays clean.
# Piped, the table is not folded to 80 columns: `storagectl volumes list | grep` sees whole rows.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 400)
err = Console(stderr=True, highlight=False)


def print_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def table(rows: list[dict], columns: list[tuple[str, object]], *, title: str | None = None) -> None:
    """`columns`: (heading, key or function(row) -> text)."""
    grid = Table(title=title, show_edge=False, header_style="bold")
    for heading, _ in columns:
        grid.add_column(heading, overflow="fold")
    for row in rows:
        grid.add_row(*[_cell(row, getter) for _, getter in columns])
    out.print(grid)


def details(item: dict, keys: list[str] | None = None) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key in keys or list(item):
        value = item.get(key)
        grid.add_row(key, json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else _text(value))
    out.print(grid)


def _cell(row: dict, getter) -> str:
    return _text(getter(row) if callable(getter) else row.get(getter))


def _text(value) -> str:
    if value is None or value == "":
        return "–"
    return str(value)


def size(number) -> str:
    if number is None:
        return "–"
    value = float(number)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(number)


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def age(text: str | None, now: datetime.datetime | None = None) -> str:
    moment = parse_time(text)
    if moment is None:
        return "never"
    seconds = max(0, int(((now or datetime.datetime.now(datetime.UTC)) - moment).total_seconds()))
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds // length} {unit} ago"
    return f"{seconds} s ago"


def show_progress() -> bool:
    return err.is_terminal


@contextmanager
def job_progress(description: str):
    """Yields `update(job)` drawing the job's bytes done/total on stderr (on a terminal)."""
    if not show_progress():
        yield lambda job: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), DownloadColumn(binary_units=True),
               TextColumn("{task.fields[status]}"), TimeElapsedColumn()]
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(description, total=None, status="queued")

        def update(job: dict) -> None:
            done = job.get("progress") or {}
            total = done.get("bytes_total") or None
            progress.update(task, total=total, completed=done.get("bytes_done") or 0,
                            status=f"{job['status']} {done.get('message') or ''}".strip())

        yield update


@contextmanager
def transfer_progress(description: str, total: int | None):
    """Yields `advance(n)` for uploads and downloads (drawn on a terminal only)."""
    if not show_progress():
        yield lambda amount: None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(binary_units=True), TimeElapsedColumn()]
    with Progress(*columns, console=err) as progress:
        task = progress.add_task(description, total=total)
        yield lambda amount: progress.advance(task, amount)
