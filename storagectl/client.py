"""HTTP client of the platform's REST API (v1) for `storagectl`.

Contract:

* Every request carries the token as `Authorization: Bearer`; the token never appears in an
  error message or in output.
* A non-2xx answer raises `ApiError` with the HTTP status and the platform's error `code`,
  `message` and `detail` (the API's one JSON error shape); a server that cannot be reached
  raises `ApiError` with status None and code `unreachable`.
* `pages()` follows `next` links until the list ends (or `limit` items were read).
* `wait_for_job()` polls `/jobs/{id}` until the job is `succeeded`, `failed` or `cancelled`,
  calling `on_update(job)` after every poll, and raises `JobWaitTimeout` past `timeout`.

It imports no Django: it is the part of the platform an operator runs on any machine.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import requests

API_PREFIX = "/api/v1"
TERMINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_PAGE_SIZE = 500
CHUNK_SIZE = 1024 * 1024


class ApiError(Exception):
    """The platform refused a request, answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str = "error", detail=None):
        super().__init__(message)
        self.message, self.status, self.code, self.detail = message, status, code, detail or {}


class JobWaitTimeout(ApiError):
    def __init__(self, job: dict, timeout: float):
        super().__init__(f"job {job.get('id')} is still {job.get('status')} after {timeout:g} s", code="wait_timeout",
                         detail={"job": job})
        self.job = job


def looks_like_uuid(value: str) -> bool:
    return bool(UUID_PATTERN.match(value or ""))


def quote_path(path: str) -> str:
    """A volume file path for the URL: each segment quoted, '/' kept."""
    return "/".join(quote(part, safe="") for part in path.strip("/").split("/") if part)


class Client:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.clock, self.sleep = clock, sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "storagectl"
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    # --- transport ------------------------------------------------------------------------
    def url(self, path: str) -> str:
        """`path` as a URL: absolute URLs (`next` links) as they are, `/api/...` on the server,
        anything else (`/volumes`, `/jobs/...`) under the API prefix."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base_url + (path if path.startswith("/api/") else API_PREFIX + path)

    def request(self, method: str, path: str, *, json=None, params=None, data=None, headers=None,
                stream: bool = False) -> requests.Response:
        try:
            response = self.session.request(method, self.url(path), json=json, params=params, data=data,
                                            headers=headers, stream=stream, timeout=self.timeout)
        except requests.ConnectionError:
            raise ApiError(f"cannot reach the platform at {self.base_url}", code="unreachable") from None
        except requests.Timeout:
            raise ApiError(f"the platform at {self.base_url} did not answer in {self.timeout:g} s",
                           code="unreachable") from None
        if response.status_code >= 400:
            raise self._error(response)
        return response

    @staticmethod
    def _error(response: requests.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "message" in body:
            return ApiError(str(body["message"]), response.status_code, str(body.get("code") or "error"),
                            body.get("detail"))
        return ApiError(f"HTTP {response.status_code} {response.reason}", response.status_code,
                        "unauthorized" if response.status_code == 401 else "http_error")

    def get(self, path: str, params=None):
        return self.request("GET", path, params=params).json()

    def post(self, path: str, body=None, headers=None):
        response = self.request("POST", path, json=body if body is not None else {}, headers=headers)
        return response.json() if response.content else None

    def delete(self, path: str) -> None:
        self.request("DELETE", path)

    def pages(self, path: str, params=None, limit: int | None = None) -> Iterator[dict]:
        query = {**(params or {}), "page_size": min(limit or MAX_PAGE_SIZE, MAX_PAGE_SIZE)}
        url, seen = path, 0
        while url:
            body = self.get(url, query)
            query = None  # the next link carries the query
            items = body.get("results", body) if isinstance(body, dict) else body
            for item in items:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            url = body.get("next") if isinstance(body, dict) else None

    # --- resources ------------------------------------------------------------------------
    def volume(self, reference: str) -> dict:
        return self.get(f"/volumes/{quote(reference, safe='')}")

    def policy(self, reference: str) -> dict:
        """A policy by id or by name."""
        if reference.isdigit():
            return self.get(f"/policies/{reference}")
        found = next(self.pages("/policies", {"name": reference}, limit=1), None)
        if found is None:
            raise ApiError(f"no policy named {reference}", 404, "policy_not_found")
        return found

    def backup(self, reference: str) -> dict:
        """A backup by id, or the newest completed backup of a volume given by name or id."""
        if looks_like_uuid(reference):
            try:
                return self.get(f"/backups/{reference}")
            except ApiError as error:
                if error.status != 404:
                    raise
        volume = self.volume(reference)
        newest = next(self.pages(f"/volumes/{volume['id']}/backups", {"status": "completed"}, limit=1), None)
        if newest is None:
            raise ApiError(f"volume {volume['name']} has no completed backup", 404, "backup_not_found")
        return newest

    def job(self, job_id: str) -> dict:
        return self.get(f"/jobs/{quote(job_id, safe='')}")

    def wait_for_job(self, job_id: str, *, timeout: float | None = None,
                     on_update: Callable[[dict], None] | None = None, interval: float = 0.5) -> dict:
        started = self.clock()
        pause = interval
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in TERMINAL_JOB_STATUSES:
                return job
            if timeout is not None and self.clock() - started > timeout:
                raise JobWaitTimeout(job, timeout)
            self.sleep(pause)
            pause = min(pause * 1.5, 2.0)

    def has_operation(self, path: str, method: str) -> bool:
        """Whether the server's OpenAPI schema offers `method` on `path` (e.g. a newer verb),
        written with or without the trailing slash (the platform's document has it)."""
        paths = self.get("/api/schema/", {"format": "json"}).get("paths", {})
        bare = path.rstrip("/")
        return any(method.lower() in (paths.get(candidate) or {}) for candidate in (bare, bare + "/"))

    def upload(self, volume: str, remote_path: str, body) -> dict:
        """PUT a file: `body` is a file-like object with a length (sent with Content-Length)
        or an iterator of bytes (sent chunked)."""
        headers = {"Content-Type": "application/octet-stream"}
        response = self.request("PUT", f"/volumes/{quote(volume, safe='')}/files/{quote_path(remote_path)}",
                                data=body, headers=headers)
        return response.json()

    def download(self, path: str, params=None) -> requests.Response:
        """A streamed response; iterate `iter_content(CHUNK_SIZE)` and close it."""
        return self.request("GET", path, params=params, stream=True, headers={"Accept": "*/*"})
