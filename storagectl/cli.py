"""`storagectl`: the platform's REST API from a terminal.

    export STORAGE_PLATFORM_URL=http://127.0.0.1:8000 STORAGE_PLATFORM_TOKEN=$(cat var/tokens/admin)
    storagectl volumes create db-1 --size-gb 10
    storagectl files put db-1 ./dump.sql
    storagectl backups create db-1 --wait
    storagectl restore db-1 --new-volume db-1-copy --paths /dump.sql --wait

Exit status: 0 success; 1 the platform refused the request (validation, conflict...);
2 bad command-line usage; 3 not authenticated or not allowed (401/403); 4 not found (404);
5 a job that was waited for failed or was cancelled, or a drill found differences;
6 the platform could not be reached; 7 `--timeout` passed while waiting. Every failure
prints one line on stderr, `storagectl: <message>`; `--json` prints results as JSON.
"""

from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

import click

from storagectl import output
from storagectl.client import CHUNK_SIZE, ApiError, Client, JobWaitTimeout, quote_path

EXIT_REFUSED, EXIT_USAGE, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_JOB_FAILED, EXIT_UNREACHABLE, EXIT_TIMEOUT = 1, 2, 3, 4, 5, 6, 7
RPO_LATE, RPO_OK, RPO_NEVER = "late", "ok", "never"


class Failure(click.ClickException):
    """One line on stderr and an exit status (see the module docstring)."""

    def __init__(self, message: str, exit_code: int = EXIT_REFUSED):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"storagectl: {self.message}", err=True)


def failure_for(error: ApiError) -> Failure:
    if isinstance(error, JobWaitTimeout):
        return Failure(error.message, EXIT_TIMEOUT)
    if error.status is None:
        return Failure(error.message, EXIT_UNREACHABLE)
    exit_code = {401: EXIT_AUTH, 403: EXIT_AUTH, 404: EXIT_NOT_FOUND}.get(error.status, EXIT_REFUSED)
    return Failure(f"{error.message} ({error.code}, HTTP {error.status})", exit_code)


class Context:
    def __init__(self, url: str, token: str | None, as_json: bool, timeout: float):
        self.client = Client(url, token, timeout=timeout)
        self.as_json = as_json


pass_context = click.make_pass_decorator(Context)


class ApiGroup(click.Group):
    """Turns API errors raised by any command into a `Failure` (one line, exit status)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ApiError as error:
            raise failure_for(error) from None


@click.group(cls=ApiGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", envvar="STORAGE_PLATFORM_URL", default="http://127.0.0.1:8000", show_default=True,
              help="Base URL of the platform (env STORAGE_PLATFORM_URL).")
@click.option("--token", envvar="STORAGE_PLATFORM_TOKEN", help="API token (env STORAGE_PLATFORM_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
@click.option("--http-timeout", default=60.0, show_default=True, help="Seconds to wait for one HTTP answer.")
@click.version_option(package_name=None, version="1.0", prog_name="storagectl")
@click.pass_context
def main(ctx, url, token, as_json, http_timeout):
    """Command-line client of the Storage & Backup Platform's REST API."""
    ctx.obj = Context(url, token, as_json, http_timeout)


def emit(ctx: Context, document, human) -> None:
    if ctx.as_json:
        output.print_json(document)
    else:
        human()


def list_resource(ctx: Context, path: str, filters: dict, columns, *, limit: int | None = None) -> None:
    """A list command: the non-empty `filters` as query, every page (up to `limit`), a table."""
    found = list(ctx.client.pages(path, {key: value for key, value in filters.items() if value}, limit=limit))
    emit(ctx, found, lambda: output.table(found, columns))


def show_resource(ctx: Context, found: dict) -> None:
    emit(ctx, found, lambda: output.details(found))


def wait(ctx: Context, job: dict, what: str, timeout: float | None) -> dict:
    """Follow a job to its end with a progress bar; a failed or cancelled job is a Failure."""
    with output.job_progress(what) as update:
        final = ctx.client.wait_for_job(job["id"], timeout=timeout, on_update=update)
    if final["status"] != "succeeded":
        reason = final.get("error") or final["status"]
        raise Failure(f"{what}: job {final['id']} {final['status']}: {reason}", EXIT_JOB_FAILED)
    return final


def job_summary(job: dict) -> str:
    progress = job.get("progress") or {}
    percent = progress.get("percent")
    return f"{job['status']}" + (f" {percent:.0f} %" if isinstance(percent, (int, float)) else "")


def rpo_minutes(volume: dict) -> int:
    """The volume's RPO in minutes; from `rpo_hours` when the server predates `rpo_minutes`."""
    if volume.get("rpo_minutes"):
        return volume["rpo_minutes"]
    return round((volume.get("rpo_hours") or 24) * 60)


def describe_rpo(volume: dict) -> str:
    """"24 h", "15 min", "1 h 30 min" - as the admin shows it; storagectl imports nothing of the
    server, so the few lines of storage_platform/rpo.py are repeated here."""
    hours, minutes = divmod(rpo_minutes(volume), 60)
    if not minutes:
        return f"{hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def rpo_status(volume: dict, now: datetime.datetime | None = None) -> str:
    """ok / late / never, the platform's rule: the newest completed backup against the RPO."""
    last = (volume.get("last_backup") or {}).get("completed_at")
    if not last:
        return RPO_NEVER
    now = now or datetime.datetime.now(datetime.UTC)
    late = now - output.parse_time(last) > datetime.timedelta(minutes=rpo_minutes(volume))
    return RPO_LATE if late else RPO_OK


wait_option = click.option("--wait", "wait_", is_flag=True, help="Follow the job to its end with a progress bar.")
timeout_option = click.option("--timeout", type=float, default=None, help="Give up waiting after this many seconds.")


# --- volumes ---------------------------------------------------------------------------------
@main.group(cls=ApiGroup)
def volumes():
    """List, show, create and delete volumes."""


@volumes.command("list")
@click.option("--status", help="Only volumes in this status.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="Only volumes with this label (repeat).")
@pass_context
def volumes_list(ctx, status, labels):
    params = {"status": status, "label": list(labels)}
    found = list(ctx.client.pages("/volumes", {key: value for key, value in params.items() if value}))
    for volume in found:
        volume["rpo_status"] = rpo_status(volume)
    emit(ctx, found, lambda: output.table(found, [
        ("NAME", "name"), ("STATUS", "status"), ("SIZE", lambda v: f"{v['size_gb']} GiB"),
        ("USED", lambda v: output.size(v["used_bytes"])), ("POLICY", "policy"), ("RPO", describe_rpo),
        ("PROTECTION", "rpo_status"), ("LAST BACKUP", lambda v: output.age((v.get("last_backup") or {}).get("completed_at"))),
    ]))


@volumes.command("show")
@click.argument("volume")
@pass_context
def volumes_show(ctx, volume):
    found = ctx.client.volume(volume)
    found["rpo_status"] = rpo_status(found)
    emit(ctx, found, lambda: output.details(found))


@volumes.command("create")
@click.argument("name")
@click.option("--size-gb", type=int, required=True, help="Quota in GiB.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="A label (repeat).")
@click.option("--policy", help="Policy name (default: the default policy).")
@click.option("--rpo-hours", type=int, help="Override the policy's RPO, in whole hours.")
@click.option("--rpo-minutes", type=int, help="Override the policy's RPO, in minutes (e.g. 15).")
@pass_context
def volumes_create(ctx, name, size_gb, labels, policy, rpo_hours, rpo_minutes):
    body = {"name": name, "size_gb": size_gb, "labels": dict(label_pair(label) for label in labels)}
    if policy:
        body["policy"] = policy
    if rpo_hours is not None:
        body["rpo_hours"] = rpo_hours
    if rpo_minutes is not None:
        body["rpo_minutes"] = rpo_minutes
    created = ctx.client.post("/volumes", body)
    emit(ctx, created, lambda: output.out.print(f"volume {created['name']} created ({created['id']})"))


def label_pair(text: str) -> tuple[str, str]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint="--label")
    return key, value


@volumes.command("delete")
@click.argument("volume")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def volumes_delete(ctx, volume, yes):
    """Delete a volume and its data (its backups are kept)."""
    found = ctx.client.volume(volume)
    if not yes and not click.confirm(f"Delete volume {found['name']} and all its files?", err=True):
        raise Failure("not deleted", EXIT_REFUSED)
    ctx.client.delete(f"/volumes/{found['id']}")
    emit(ctx, {"deleted": found["id"], "name": found["name"]},
         lambda: output.out.print(f"volume {found['name']} deleted"))


# --- files -----------------------------------------------------------------------------------
@main.group(cls=ApiGroup)
def files():
    """List, upload and download the files of a volume."""


@files.command("ls")
@click.argument("volume")
@click.argument("path", default="")
@pass_context
def files_ls(ctx, volume, path):
    entries = list(volume_entries(ctx.client, volume, path))
    emit(ctx, entries, lambda: output.table(entries, [
        ("TYPE", "type"), ("MODE", "mode"), ("SIZE", lambda e: output.size(e.get("size"))), ("MODIFIED", "mtime"),
        ("NAME", lambda e: e["name"] + ("/" if e["type"] == "dir" else f" -> {e['target']}" if e.get("target") else "")),
    ]))


@files.command("put")
@click.argument("volume")
@click.argument("local", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.argument("remote", required=False)
@pass_context
def files_put(ctx, volume, local, remote):
    """Upload LOCAL (or - for stdin) to REMOTE in the volume (default: its file name)."""
    if local == "-" and not remote:
        raise click.UsageError("REMOTE is required when reading stdin")
    remote = remote or Path(local).name
    if local == "-":
        result = ctx.client.upload(volume, remote, iter(lambda: sys.stdin.buffer.read(CHUNK_SIZE), b""))
    else:
        total = os.path.getsize(local)
        with open(local, "rb") as handle, output.transfer_progress(f"put {remote}", total) as advance:
            result = ctx.client.upload(volume, remote, CountingReader(handle, total, advance))
    emit(ctx, result, lambda: output.out.print(f"{result['path']}: {output.size(result['size'])}, sha256 {result['sha256']}"))


@files.command("get")
@click.argument("volume")
@click.argument("remote")
@click.argument("local", required=False)
@pass_context
def files_get(ctx, volume, remote, local):
    """Download REMOTE from the volume to LOCAL (default: its name here; - for stdout)."""
    response = ctx.client.download(f"/volumes/{volume}/files/{quote_path(remote)}")
    save(response, local or Path(remote).name, f"get {remote}")


class CountingReader:
    """A file whose reads are reported to `advance` (the upload's progress bar). Its length is
    known, so the body is sent with Content-Length rather than chunked."""

    def __init__(self, handle, length: int, advance):
        self.handle, self.length, self.advance = handle, length, advance

    def __len__(self) -> int:
        return self.length

    def read(self, size: int = -1) -> bytes:
        block = self.handle.read(size)
        self.advance(len(block))
        return block


def save(response, local: str, what: str) -> None:
    total = int(response.headers.get("Content-Length") or 0) or None
    try:
        if local == "-":
            for block in response.iter_content(CHUNK_SIZE):
                sys.stdout.buffer.write(block)
            sys.stdout.buffer.flush()
            return
        target = Path(local)
        partial = target.with_name(f".{target.name}.part")
        with open(partial, "wb") as handle, output.transfer_progress(what, total) as advance:
            for block in response.iter_content(CHUNK_SIZE):
                handle.write(block)
                advance(len(block))
        partial.replace(target)  # never leave half a file under the final name
        output.err.print(f"{target}: {output.size(target.stat().st_size)}")
    finally:
        response.close()


# --- backups ---------------------------------------------------------------------------------
@main.group(cls=ApiGroup)
def backups():
    """List, show, create, browse and download backups."""


BACKUP_COLUMNS = [("ID", "id"), ("VOLUME", "volume_name"), ("STATUS", "status"), ("TRIGGER", "trigger"),
                  ("COMPLETED", lambda b: output.age(b.get("completed_at"))),
                  ("READ", lambda b: output.size((b.get("stats") or {}).get("bytes_read"))),
                  ("SNAPSHOT", lambda b: (b.get("snapshot_id") or "")[:12])]


@backups.command("list")
@click.option("--volume", help="Only backups of this volume (name or id).")
@click.option("--status", help="Only backups in this status.")
@click.option("--limit", type=int, default=100, show_default=True)
@pass_context
def backups_list(ctx, volume, status, limit):
    list_resource(ctx, "/backups", {"volume": volume, "status": status}, BACKUP_COLUMNS, limit=limit)


@backups.command("show")
@click.argument("backup")
@pass_context
def backups_show(ctx, backup):
    show_resource(ctx, ctx.client.backup(backup))


@backups.command("create")
@click.argument("volume")
@wait_option
@timeout_option
@pass_context
def backups_create(ctx, volume, wait_, timeout):
    backup = ctx.client.post(f"/volumes/{volume}/backups")
    if wait_:
        job = wait(ctx, {"id": backup["job"]}, f"backup {backup['volume_name']}", timeout)
        backup = ctx.client.backup(backup["id"])
        backup["job_status"] = job["status"]
    emit(ctx, backup, lambda: output.out.print(
        f"backup {backup['id']} of {backup['volume_name']}: {backup['status']} (job {backup['job']})"))


@backups.command("browse")
@click.argument("backup")
@click.argument("path", default="/")
@pass_context
def backups_browse(ctx, backup, path):
    found = ctx.client.backup(backup)
    listing = ctx.client.get(f"/backups/{found['id']}/files", {"path": path})
    entries = listing["entries"]
    emit(ctx, listing, lambda: output.table(entries, [
        ("TYPE", "type"), ("SIZE", lambda e: output.size(e.get("size"))), ("MODIFIED", "mtime"),
        ("NAME", lambda e: e["name"] + ("/" if e["type"] == "dir" else "")),
    ], title=f"{found['volume_name']} @ {found.get('completed_at')}: {listing['path']}"))


@backups.command("download")
@click.argument("backup")
@click.argument("path")
@click.argument("local", required=False)
@pass_context
def backups_download(ctx, backup, path, local):
    """Download one file of a backup to LOCAL (default: its name here; - for stdout)."""
    found = ctx.client.backup(backup)
    response = ctx.client.download(f"/backups/{found['id']}/download", {"path": path})
    save(response, local or Path(path).name, f"download {path}")


# --- restore, verify, drill ------------------------------------------------------------------
def split_paths(values) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@main.command()
@click.argument("backup")
@click.option("--new-volume", required=True, help="Name of the volume to create and restore into.")
@click.option("--paths", "--path", "paths", multiple=True, metavar="PATH[,PATH]",
              help="Restore only these snapshot paths (repeat or comma-separate).")
@click.option("--size-gb", type=int, help="Quota of the new volume (default: the source's).")
@wait_option
@timeout_option
@pass_context
def restore(ctx, backup, new_volume, paths, size_gb, wait_, timeout):
    """Restore BACKUP (an id, or a volume's name for its newest backup) into a new volume."""
    found = ctx.client.backup(backup)
    body = {"new_volume_name": new_volume}
    if paths:
        body["paths"] = split_paths(paths)
    if size_gb:
        body["size_gb"] = size_gb
    job = ctx.client.post(f"/backups/{found['id']}/restore", body)
    if wait_:
        job = wait(ctx, job, f"restore {found['volume_name']} → {new_volume}", timeout)
    emit(ctx, job, lambda: output.out.print(f"restore job {job['id']}: {job_summary(job)}"))


@main.command()
@click.argument("backup", required=False)
@click.option("--read-data-percent", type=click.FloatRange(0, 100), default=0.0, show_default=True,
              help="Share of the data to read and authenticate.")
@wait_option
@timeout_option
@pass_context
def verify(ctx, backup, read_data_percent, wait_, timeout):
    """Verify the repository (the one holding BACKUP, if given)."""
    body = {"read_data_percent": read_data_percent}
    if backup:
        job = ctx.client.post(f"/backups/{ctx.client.backup(backup)['id']}/verify", body)
    else:
        job = ctx.client.post("/verify", body)
    if wait_:
        job = wait(ctx, job, "verify", timeout)
    emit(ctx, job, lambda: output.out.print(f"verify job {job['id']}: {job_summary(job)}"))


@main.command()
@click.argument("policy")
@wait_option
@timeout_option
@pass_context
def replicate(ctx, policy, wait_, timeout):
    """Copy POLICY's backups (an id or a name) missing from its replication target now."""
    found = ctx.client.policy(policy)
    job = ctx.client.post(f"/policies/{found['id']}/replicate")
    if wait_:
        job = wait(ctx, job, f"replicate {found['name']} → {found.get('replication_target')}", timeout)
    emit(ctx, job, lambda: output.out.print(f"replicate job {job['id']}: {job_summary(job)}"))


DRILL_PATH = "/api/v1/backups/{id}/drill"


@main.command()
@click.argument("backup")
@click.option("--keep", is_flag=True, help="Keep the drill's volume afterwards (platforms without drill jobs).")
@timeout_option
@pass_context
def drill(ctx, backup, keep, timeout):
    """Prove BACKUP restores: restore it and compare every entry with the snapshot.

    Uses the platform's drill job when it offers one (a worker restores into a scratch
    folder and checks content hashes, sizes and modes; the job's report is printed). An older
    platform gets the drill done here: a restore into `drill-<volume>-<time>`, every file's
    type and size compared with the snapshot's listing, and the volume deleted (unless --keep)."""
    found = ctx.client.backup(backup)
    if ctx.client.has_operation(DRILL_PATH, "post"):
        platform_drill(ctx, found, timeout)
        return
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    name = f"drill-{found['volume_name'][:63 - len(stamp) - 10].rstrip('-')}-at-{stamp}"
    job = ctx.client.post(f"/backups/{found['id']}/restore", {"new_volume_name": name})
    report = {"backup": found["id"], "volume": name, "restore_job": job["id"], "kept": keep}
    try:
        wait(ctx, job, f"drill {found['volume_name']} → {name}", timeout)
        expected = snapshot_tree(ctx.client, found["id"])
        restored = volume_tree(ctx.client, name)
        report.update(entries=len(expected), missing=sorted(set(expected) - set(restored)),
                      unexpected=sorted(set(restored) - set(expected)),
                      different=sorted(p for p in set(expected) & set(restored) if expected[p] != restored[p]))
    finally:
        if not keep:
            try:
                ctx.client.delete(f"/volumes/{name}")
            except ApiError as error:
                if error.status != 404:
                    raise
    report["ok"] = not (report.get("missing") or report.get("unexpected") or report.get("different"))
    emit(ctx, report, lambda: output.out.print(
        f"drill of {found['volume_name']}: {report['entries']} entries "
        + ("identical" if report["ok"] else f"differ: missing {report['missing']}, unexpected "
           f"{report['unexpected']}, different {report['different']}")
        + (f"; volume {name} kept" if keep else "")))
    if not report["ok"]:
        raise Failure(f"drill of {found['volume_name']} found differences", EXIT_JOB_FAILED)


def platform_drill(ctx, found: dict, timeout: float | None) -> None:
    """The platform's drill job, followed to its end; a failed drill is a Failure (exit 5)
    naming the job's error."""
    job = wait(ctx, ctx.client.post(f"/backups/{found['id']}/drill"), f"drill {found['volume_name']}", timeout)
    checked = (job.get("result") or {}).get("drill") or {}
    entries = sum(checked.get(kind, 0) for kind in ("files", "dirs", "symlinks", "specials"))
    report = {"backup": found["id"], "drill_job": job["id"], "ok": bool(job["result"].get("ok")), "entries": entries,
              "bytes_checked": checked.get("bytes_checked", 0), "warnings": (checked.get("restore") or {}).get("warnings", [])}
    emit(ctx, report, lambda: output.out.print(
        f"drill of {found['volume_name']}: {entries} entries identical (job {job['id']})"))


def snapshot_tree(client: Client, backup_id: str, path: str = "/") -> dict[str, tuple]:
    """Every entry of a snapshot: path -> (type, size of files)."""
    found = {}
    for entry in client.get(f"/backups/{backup_id}/files", {"path": path})["entries"]:
        child = f"{path.rstrip('/')}/{entry['name']}"
        found[child] = (entry["type"], entry.get("size") if entry["type"] == "file" else None)
        if entry["type"] == "dir":
            found.update(snapshot_tree(client, backup_id, child))
    return found


def volume_entries(client: Client, volume: str, path: str = ""):
    """A directory of a volume (paths there are relative to the volume's root)."""
    relative = path.strip("/")
    return client.pages(f"/volumes/{quote_path(volume)}/files", {"path": relative} if relative else None)


def volume_tree(client: Client, volume: str, path: str = "/") -> dict[str, tuple]:
    found = {}
    for entry in volume_entries(client, volume, path):
        child = f"{path.rstrip('/')}/{entry['name']}"
        found[child] = (entry["type"], entry.get("size") if entry["type"] == "file" else None)
        if entry["type"] == "dir":
            found.update(volume_tree(client, volume, child))
    return found


# --- jobs ------------------------------------------------------------------------------------
@main.group(cls=ApiGroup)
def jobs():
    """List, show, watch and cancel jobs."""


JOB_COLUMNS = [("ID", "id"), ("KIND", "kind"), ("STATUS", "status"),
               ("PROGRESS", lambda j: f"{(j.get('progress') or {}).get('percent') or 0:.0f} %"),
               ("CREATED", lambda j: output.age(j.get("created_at"))), ("ERROR", "error_code")]


@jobs.command("list")
@click.option("--status")
@click.option("--kind")
@click.option("--volume", help="Volume name or id.")
@click.option("--limit", type=int, default=50, show_default=True)
@pass_context
def jobs_list(ctx, status, kind, volume, limit):
    list_resource(ctx, "/jobs", {"status": status, "kind": kind, "volume": volume}, JOB_COLUMNS, limit=limit)


@jobs.command("show")
@click.argument("job")
@pass_context
def jobs_show(ctx, job):
    show_resource(ctx, ctx.client.job(job))


@jobs.command("watch")
@click.argument("job")
@timeout_option
@pass_context
def jobs_watch(ctx, job, timeout):
    """Follow a job with a progress bar; exits non-zero if it fails or is cancelled."""
    current = ctx.client.job(job)
    final = wait(ctx, current, f"{current['kind']} job", timeout)
    emit(ctx, final, lambda: output.out.print(f"{final['kind']} job {final['id']}: {job_summary(final)}"))


@jobs.command("cancel")
@click.argument("job")
@pass_context
def jobs_cancel(ctx, job):
    found = ctx.client.post(f"/jobs/{ctx.client.job(job)['id']}/cancel")
    emit(ctx, found, lambda: output.out.print(
        f"job {found['id']}: {found['status']}" + (" (stops at its next chunk)" if found.get("cancel_requested")
                                                    and found["status"] == "running" else "")))


# --- tokens ----------------------------------------------------------------------------------
@main.group(cls=ApiGroup)
def tokens():
    """List, create and revoke API tokens (admin role)."""


@tokens.command("list")
@pass_context
def tokens_list(ctx):
    list_resource(ctx, "/tokens", {}, [
        ("ID", "id"), ("NAME", "name"), ("ROLE", "role"), ("PREFIX", "prefix"), ("STATE", "state"),
        ("LAST USED", lambda t: output.age(t.get("last_used_at"))), ("EXPIRES", "expires_at")])


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=click.Choice(["read", "backup", "admin"]), required=True)
@click.option("--expires-in-days", type=int)
@pass_context
def tokens_create(ctx, name, role, expires_in_days):
    """Create a token; its secret is printed once, on stdout."""
    body = {"name": name, "role": role}
    if expires_in_days:
        body["expires_in_days"] = expires_in_days
    created = ctx.client.post("/tokens", body)
    emit(ctx, created, lambda: (output.out.print(created["token"]),
                                output.err.print(f"token {name} ({role}) created; the secret above is shown once")))


@tokens.command("revoke")
@click.argument("token", metavar="NAME_OR_ID")
@pass_context
def tokens_revoke(ctx, token):
    match = next((t for t in ctx.client.pages("/tokens") if t["name"] == token or str(t["id"]) == token), None)
    if match is None:
        raise Failure(f"no token named {token!r}", EXIT_NOT_FOUND)
    ctx.client.delete(f"/tokens/{match['id']}")
    emit(ctx, {"revoked": match["id"], "name": match["name"]}, lambda: output.out.print(f"token {match['name']} revoked"))


def run(argv: list[str] | None = None) -> int:
    """Entry point: never a traceback, and `... --json | head` ends quietly."""
    try:
        main.main(args=argv, prog_name="storagectl", standalone_mode=True)
    except BrokenPipeError:
        # The reader went away (`| head`): quietly, with status 1, as click itself does for a
        # closed pipe; stdout now points at /dev/null so the final flush cannot raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_REFUSED
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except KeyboardInterrupt:
        click.echo("storagectl: interrupted", err=True)
        return 130
    except Exception as error:  # the last line of defence: one line, never a traceback
        click.echo(f"storagectl: unexpected {type(error).__name__}: {error}", err=True)
        return EXIT_REFUSED
    return 0
