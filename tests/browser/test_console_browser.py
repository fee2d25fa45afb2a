"""The operator console in a real browser: Debian's headless chromium driven by Playwright,
against a real gunicorn server (tests/support/fixtures_server.py) and, where jobs must run,
a real Celery worker. Every page load blocks requests to any host but the server's, and each
test asserts that none was needed.

`playwright install` downloads a browser build, which cannot be had here: the browser is the
system's /usr/bin/chromium (`.ci/run` installs it), launched by path.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.services import require_service

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "a-long-password-for-ops-1"
JOB_TIMEOUT_MS = 90_000
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


@pytest.fixture(scope="module")
def browser():
    require_service("chromium", shutil.which(CHROMIUM) is not None, f"{CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the tests' own ORM calls are
    # plain synchronous code and safe, so Django's async guard is lifted for this module only.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield launched
    launched.close()
    playwright.stop()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Page:
    """A browser tab on the platform server that refuses every request to another host."""

    def __init__(self, browser, base_url: str):
        self.base_url = base_url
        self.context = browser.new_context(base_url=base_url, viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(20_000)
        self.blocked: list[str] = []
        self.context.route("**/*", self._only_local)
        self.tab = self.context.new_page()

    def _only_local(self, route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def log_in(self, username: str = "ops", password: str = PASSWORD) -> None:
        self.tab.goto("/admin/")
        self.tab.fill("#id_username", username)
        self.tab.fill("#id_password", password)
        self.tab.click("input[type=submit]")


@pytest.fixture
def page(browser, platform_server):
    opened = Page(browser, platform_server.url)
    yield opened
    opened.context.close()
    assert opened.blocked == [], f"pages asked for other hosts: {opened.blocked}"


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("ops", "ops@example.com", PASSWORD)


def test_logging_in(page, staff):
    page.tab.goto("/admin/")
    assert "/admin/login/" in page.tab.url
    page.log_in(password="not-the-password")
    assert "Please enter the correct username and password" in page.tab.inner_text(".errornote")
    page.log_in()
    page.tab.wait_for_selector("#overview")
    assert page.tab.inner_text("#site-name").strip() == "Storage & Backup Platform"
    assert page.tab.locator("a:has-text('View site')").get_attribute("href") == "/"
    page.tab.click("a:has-text('View site')")
    assert page.tab.locator("#link-admin").is_visible()


def test_the_overview_names_a_late_volume(page, staff, make_volume):
    from django.utils import timezone

    from backups.models import Backup, BackupStatus, Job, JobKind, JobStatus

    late, fine = make_volume("late-ledger"), make_volume("fresh-ledger")
    for volume, hours in ((late, 30), (fine, 1)):
        at = timezone.now() - datetime.timedelta(hours=hours)
        job = Job.objects.create(kind=JobKind.BACKUP, volume=volume, status=JobStatus.SUCCEEDED, queue="backup",
                                 finished_at=at)
        Backup.objects.create(volume=volume, volume_name=volume.name, job=job, status=BackupStatus.COMPLETED,
                              snapshot_id=f"snap-{volume.name}", completed_at=at)
    page.log_in()
    late_panel = page.tab.locator("#late-volumes")
    late_panel.wait_for()
    late_text = late_panel.inner_text().replace("\xa0", " ")
    assert "late-ledger" in late_text and "1 day, 6 hours ago" in late_text
    assert "fresh-ledger" not in late_text
    assert page.tab.inner_text("#count-late") == "1" and page.tab.inner_text("#count-ok") == "1"
    # The volume list says the same, in colour, and filters by it.
    page.tab.goto("/admin/volumes/volume/?rpo=late")
    assert page.tab.locator("#result_list tbody tr").count() == 1
    assert page.tab.inner_text("#result_list .rpo-late") == "LATE"


def test_a_backup_triggered_from_the_admin_completes_then_restores_to_a_new_volume_through_the_form(
        page, staff, make_volume, celery_worker_factory):
    from backups.models import Backup
    from volumes.models import Volume

    # Uploads paced at 1 MiB/s: the 6 MiB backup runs for seconds, so its page is seen live
    # (with the default heartbeat interval: progress is written every 2 s regardless).
    celery_worker_factory(env={"BACKUP_UPLOAD_LIMIT_KIB": "1024"})
    volume = make_volume("browser-data", files={"docs/readme.md": b"# hello\n", "docs/notes.txt": b"notes",
                                                "big.bin": os.urandom(6 * 1024 * 1024)})
    page.log_in()
    page.tab.goto("/admin/volumes/volume/")
    page.tab.check(f"input[name=_selected_action][value='{volume.pk}']")
    page.tab.select_option("select[name=action]", "back_up_now")
    page.tab.click("button[name=index]")
    message = page.tab.locator("ul.messagelist li.success")
    assert "Backups queued: browser-data" in message.inner_text()
    message.locator("a").click()  # the link to the job it started
    panel = page.tab.locator("#job-progress")
    assert panel.locator(".job-progress").get_attribute("data-finished") == "false"
    panel.locator("#job-status").filter(has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    assert int(panel.get_attribute("data-refreshed")) >= 1  # it got there by refreshing itself
    assert "100 %" in panel.inner_text()
    backup = Backup.objects.get(volume_id=volume.pk)
    assert backup.status == "completed" and backup.snapshot_id

    # Restore two paths of it into a new volume through the form on the backup's page.
    panel.locator(f"a[href='/admin/backups/backup/{backup.pk}/change/']").click()
    page.tab.click("#restore-link")
    page.tab.fill("#id_new_volume_name", "browser-restored")
    page.tab.fill("#id_paths", "/docs\n")
    page.tab.click("#restore-form input[type=submit]")
    page.tab.locator("#job-status").filter(has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    assert "browser-restored" in page.tab.inner_text("#job-progress")
    root = Path(Volume.objects.get(name="browser-restored").path)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["docs", "docs/notes.txt", "docs/readme.md"]
    assert (root / "docs" / "readme.md").read_bytes() == b"# hello\n"


def test_swagger_renders_every_operation_with_no_other_host(page, platform_server):
    schema = requests.get(f"{platform_server.url}/api/schema/", params={"format": "json"}, timeout=30).json()
    operations = sum(1 for item in schema["paths"].values() for method in item if method in HTTP_METHODS)
    assert operations > 30
    page.tab.goto("/api/docs/")
    blocks = page.tab.locator(".opblock")
    # Polled through locators: a wait_for_function string would be an eval, which the page's
    # Content-Security-Policy (rightly) refuses.
    blocks.nth(operations - 1).wait_for(timeout=30_000)
    assert blocks.count() == operations
    assert page.tab.locator(".swagger-ui .errors-wrapper").count() == 0
    assert page.tab.locator(".info .title").inner_text().startswith(schema["info"]["title"])
