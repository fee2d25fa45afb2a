# -*- coding: utf-8 -*-
# Copyright: contributors to the Storage & Backup Platform
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""REST client for the Storage & Backup Platform API (v1), shared by every module.

Contract (what modules may rely on):

* Every request carries the token in ``Authorization: Bearer``; the token never appears in
  an exception message, a URL or a return value.
* A non-2xx answer raises `PlatformApiError` carrying the HTTP status and the platform's
  stable error ``code``, ``message`` and ``detail`` (the API's one JSON error shape), so
  modules can fail with a message a person understands and match on ``code``.
* ``get`` answers ``None`` for 404 ("not found" is a state, not an error); ``delete`` answers
  ``False`` for 404 ("already gone" is success with nothing changed).
* Reads (GET) are retried on connection errors and 502/503/504, honouring ``Retry-After``;
  writes are never retried here, because a retried POST could start a second backup.
* ``wait_for_job`` polls ``/api/v1/jobs/{id}`` until the job reaches a terminal state
  (``succeeded``, ``failed``, ``cancelled``) and raises `JobTimeout` if it does not in time.

It depends only on the standard library and ``ansible.module_utils.urls`` so it runs in any
Python that runs Ansible modules; time and the HTTP opener are injectable for tests.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import time

from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit

from ansible.module_utils.urls import open_url

API_PREFIX = "/api/v1"
TERMINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")
RETRYABLE_STATUSES = (502, 503, 504)
UUID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
# Largest page the API serves; fewer round trips when listing everything.
MAX_PAGE_SIZE = 500
# The environment variable each connection option falls back to, named the same way in the
# argument spec, the documentation and every error message.
ENVIRONMENT_FALLBACKS = {"api_url": "STORAGE_PLATFORM_URL", "api_token": "STORAGE_PLATFORM_TOKEN"}


def missing_option_message(option):
    return "%s is required: set the %s option or the %s environment variable" % (
        option, option, ENVIRONMENT_FALLBACKS[option])


class PlatformApiError(Exception):
    """The platform answered with an error, or could not be reached.

    ``status`` is the HTTP status (None when the server was not reached), ``code`` the
    platform's stable error code, ``detail`` its structured context.
    """

    def __init__(self, message, status=None, code=None, detail=None):
        super(PlatformApiError, self).__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.detail = detail if detail is not None else {}

    def as_result(self):
        """Keyword arguments for ``AnsibleModule.fail_json``."""
        return {"msg": self.message, "status": self.status, "error_code": self.code, "detail": self.detail}


class JobTimeout(PlatformApiError):
    """A job did not reach a terminal state within the allowed time; ``job`` is its last state."""

    def __init__(self, message, job):
        super(JobTimeout, self).__init__(message, code="job_timeout", detail={"job": job})
        self.job = job


class ApiResponse:
    """One answer: HTTP status, decoded JSON body (or None) and the headers."""

    def __init__(self, status, data, headers):
        self.status = status
        self.data = data
        self.headers = headers


def looks_like_uuid(value):
    return bool(value) and bool(UUID_PATTERN.match(str(value)))


def _decode_json(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        return None


def _retry_after_seconds(headers, default):
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return max(0.0, float(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


class PlatformClient:
    """A small client for the platform's REST API (see the module docstring for the contract)."""

    def __init__(self, base_url, token, timeout=30, validate_certs=True, retries=3,
                 opener=open_url, sleep=time.sleep, clock=time.monotonic):
        if not base_url:
            raise PlatformApiError(missing_option_message("api_url"), code="configuration")
        if not token:
            raise PlatformApiError(missing_option_message("api_token"), code="configuration")
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.retries = max(0, int(retries))
        self._open = opener
        self._sleep = sleep
        self._clock = clock

    def monotonic(self):
        """The client's clock (injectable), for deadlines shared by several waits."""
        return self._clock()

    def pause(self, seconds):
        """Sleep with the client's (injectable) sleep function."""
        self._sleep(seconds)

    # --- transport -------------------------------------------------------------------------
    def url_for(self, path, query=None):
        """An absolute URL on this platform for `path`.

        A pagination ``next`` link pointing at another host is reduced to its path and query,
        so the token is only ever sent to ``api_url``.
        """
        if path.startswith("http://") or path.startswith("https://"):
            parts = urlsplit(path)
            path = parts.path + ("?" + parts.query if parts.query else "")
        if not path.startswith("/"):
            path = "/" + path
        # A platform served under a prefix (https://host/backup/): its own `next` links
        # already carry the prefix, so it is not added twice.
        prefix = urlsplit(self.base_url).path.rstrip("/")
        if prefix and path.startswith(prefix + "/"):
            path = path[len(prefix):]
        url = self.base_url + path
        if query:
            pairs = [(key, value) for key, value in query.items() if value is not None]
            if pairs:
                url += ("&" if "?" in url else "?") + urlencode(pairs)
        return url

    def request(self, method, path, body=None, query=None, headers=None, raw=False, retry=True, content=None):
        """Send one request; answer an `ApiResponse` or raise `PlatformApiError`.

        `retry=False` turns off the retries of reads (for probes such as /ready, whose 503
        is the answer, not a hiccup). `content` sends raw bytes instead of a JSON `body`.
        """
        url = self.url_for(path, query)
        request_headers = {"Accept": "application/json", "Authorization": "Bearer " + self._token}
        data = None
        if content is not None:  # raw bytes: the file data plane
            data = content
            request_headers["Content-Type"] = "application/octet-stream"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            request_headers["Content-Type"] = "application/json"
        request_headers.update(headers or {})
        attempts = 1 + (self.retries if method == "GET" and retry else 0)
        for attempt in range(1, attempts + 1):
            try:
                response = self._open(
                    url, data=data, headers=request_headers, method=method, timeout=self.timeout,
                    validate_certs=self.validate_certs, follow_redirects="safe", use_netrc=False,
                )
                answer = response.read()
                return ApiResponse(response.getcode(), answer if raw else _decode_json(answer),
                                   dict(response.headers.items()) if response.headers else {})
            except HTTPError as error:
                answer = error.read() if hasattr(error, "read") else b""
                if error.code in RETRYABLE_STATUSES and attempt < attempts:
                    self._sleep(min(30.0, _retry_after_seconds(error.headers, 2.0 * attempt)))
                    continue
                raise self._http_error(method, path, error.code, _decode_json(answer), error.headers) from None
            except (URLError, OSError) as error:
                if attempt < attempts:
                    self._sleep(2.0 * attempt)
                    continue
                reason = getattr(error, "reason", error)
                raise PlatformApiError(
                    "cannot reach the platform at %s: %s" % (self.base_url, reason), code="unreachable"
                ) from None
        raise PlatformApiError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _http_error(method, path, status, body, headers):
        """Turn an error answer into a one-line message naming the call and the platform's words."""
        short_path = urlsplit(path).path or path
        if isinstance(body, dict) and "code" in body:
            code, message, detail = body.get("code"), body.get("message") or "", body.get("detail") or {}
        elif isinstance(body, dict):
            # Probes such as /ready answer 503 with their own report; keep it whole.
            code, message, detail = "http_%d" % status, body.get("message") or body.get("status") or "", body
        else:
            code, message, detail = "http_%d" % status, "unexpected answer (not the platform's JSON error)", {}
        text = "%s %s failed with HTTP %d (%s): %s" % (method, short_path, status, code, message)
        if status == 503 and headers is not None and headers.get("Retry-After"):
            text += " (retry after %s s)" % headers.get("Retry-After")
        if status == 401:
            text += " - check api_token"
        elif status == 403:
            text += " - the token's role does not allow this"
        return PlatformApiError(text, status=status, code=code, detail=detail)

    # --- verbs -----------------------------------------------------------------------------
    def get(self, path, query=None, retry=True):
        """The JSON at `path`, or None when it does not exist (404)."""
        try:
            return self.request("GET", path, query=query, retry=retry).data
        except PlatformApiError as error:
            if error.status == 404:
                return None
            raise

    def post(self, path, body=None, headers=None):
        return self.request("POST", path, body=body if body is not None else {}, headers=headers).data

    def patch(self, path, body):
        return self.request("PATCH", path, body=body).data

    def delete(self, path):
        """Delete `path`: answer (True, body) when deleted, (False, None) when already gone."""
        try:
            return True, self.request("DELETE", path).data
        except PlatformApiError as error:
            if error.status == 404:
                return False, None
            raise

    def upload(self, path, content):
        """PUT raw bytes (file data plane); answers the JSON the platform returns."""
        return self.request("PUT", path, content=content).data

    def download(self, path, query=None):
        """The raw bytes at `path` (file data plane)."""
        return self.request("GET", path, query=query, raw=True).data

    def list(self, path, query=None, limit=None):
        """Every item of a paginated collection, following ``next`` links.

        Accepts the paginated shape (``count/next/previous/results``) and a bare JSON list.
        """
        query = dict(query or {})
        query.setdefault("page_size", MAX_PAGE_SIZE)
        items = []
        data = self.request("GET", path, query=query).data
        while True:
            if isinstance(data, list):
                items.extend(data)
                break
            if not isinstance(data, dict):
                break
            items.extend(data.get("results") or [])
            if limit is not None and len(items) >= limit:
                break
            next_url = data.get("next")
            if not next_url:
                break
            data = self.request("GET", next_url).data
        return items[:limit] if limit is not None else items

    # --- resources -------------------------------------------------------------------------
    def find_volume(self, name_or_id):
        """The volume with this name or id, or None."""
        if looks_like_uuid(name_or_id):
            found = self.get("%s/volumes/%s" % (API_PREFIX, name_or_id))
            if found is not None:
                return found
        for volume in self.list("%s/volumes" % API_PREFIX, {"name": name_or_id}):
            # The name filter may match loosely; only an exact name is this volume.
            if volume.get("name") == name_or_id:
                return volume
        return None

    def get_job(self, job_id):
        return self.get("%s/jobs/%s" % (API_PREFIX, job_id))

    def wait_for_job(self, job_id, timeout=600, interval=2.0):
        """Poll the job until it is terminal; answer its final state.

        Raises `JobTimeout` after `timeout` seconds and `PlatformApiError` if the job vanishes.
        The job's own outcome (failed/cancelled) is returned, not raised: callers decide.
        """
        deadline = self._clock() + timeout
        delay = min(0.25, interval)
        while True:
            job = self.get_job(job_id)
            if job is None:
                raise PlatformApiError("job %s does not exist" % job_id, status=404, code="job_not_found")
            if job.get("status") in TERMINAL_JOB_STATUSES:
                return job
            if self._clock() >= deadline:
                raise JobTimeout(
                    "job %s is still %s after %s s (progress %s)"
                    % (job_id, job.get("status"), timeout, job.get("progress")), job,
                )
            # Start fast (most jobs in tests and small volumes end within a second), then back
            # off to `interval` so that a fleet of waiting playbooks does not hammer the API.
            self._sleep(delay)
            delay = min(interval, delay * 2)

    def wait_for_volume_status(self, volume_id, wanted, timeout=300, interval=2.0):
        """Poll a volume until its status is in `wanted` or it reaches `error`; answer it.

        Answers None if the volume disappears (a delete completing).
        """
        deadline = self._clock() + timeout
        delay = min(0.25, interval)
        while True:
            volume = self.get("%s/volumes/%s" % (API_PREFIX, volume_id))
            if volume is None or volume.get("status") in wanted or volume.get("status") == "error":
                return volume
            if self._clock() >= deadline:
                raise PlatformApiError(
                    "volume %s is still %s after %s s" % (volume.get("name"), volume.get("status"), timeout),
                    code="volume_timeout", detail={"volume": volume},
                )
            self._sleep(delay)
            delay = min(interval, delay * 2)


def job_id_of(item):
    """The job id carried by a backup or job answer (``job`` may be an id or a nested job)."""
    if not isinstance(item, dict):
        return None
    job = item.get("job")
    if isinstance(job, dict):
        return job.get("id")
    if job:
        return job
    if item.get("kind") and item.get("id"):
        return item.get("id")  # the answer is the job itself (restore, verify)
    return None
