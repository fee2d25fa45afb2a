"""The client's transport rules against a scripted real HTTP server (stdlib, on loopback):
what is retried, what is not, where the token may go, and how job polling ends."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.ops.collection import import_collection_module

client_module = import_collection_module("module_utils.platform_client")
TOKEN = "sbp_transport-test-token-0000000000000"


class ScriptedServer:
    """Answers each request with the next scripted (status, headers, body) for its path and
    records what it received."""

    def __init__(self):
        self.script: dict[str, list] = {}
        self.received: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.received.append({"method": self.command, "path": self.path,
                                       "authorization": self.headers.get("Authorization"),
                                       "body": self.rfile.read(length) if length else b""})
                answers = outer.script.get(self.path.split("?")[0]) or [(404, {}, {"code": "not_found", "message": "no"})]
                status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
                payload = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PATCH = _answer

            def log_message(self, *arguments):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    scripted = ScriptedServer()
    yield scripted
    scripted.close()


def make_client(server, **options):
    sleeps = []
    client = client_module.PlatformClient(server.url, TOKEN, sleep=sleeps.append, **options)
    return client, sleeps


def test_reads_are_retried_on_503_honouring_retry_after(server):
    server.script["/api/v1/volumes/x"] = [(503, {"Retry-After": "7"}, {"code": "busy", "message": "later"}),
                                          (200, {}, {"id": "x"})]
    client, sleeps = make_client(server)
    assert client.get("/api/v1/volumes/x") == {"id": "x"}
    assert sleeps == [7.0] and len(server.received) == 2


def test_writes_are_never_retried_and_maintenance_is_explained(server):
    server.script["/api/v1/volumes"] = [(503, {"Retry-After": "60"},
                                         {"code": "maintenance", "message": "The platform is in maintenance mode."})]
    client, sleeps = make_client(server)
    with pytest.raises(client_module.PlatformApiError) as caught:
        client.post("/api/v1/volumes", {"name": "a", "size_gb": 1})
    assert caught.value.code == "maintenance" and "(retry after 60 s)" in caught.value.message
    assert sleeps == [] and len(server.received) == 1


def test_a_next_link_to_another_host_is_followed_on_api_url_only(server):
    server.script["/api/v1/things"] = [
        (200, {}, {"count": 2, "next": "http://evil.example:9/api/v1/things?page=2", "results": [{"n": 1}]}),
        (200, {}, {"count": 2, "next": None, "results": [{"n": 2}]}),
    ]
    client, _ = make_client(server)
    assert client.list("/api/v1/things") == [{"n": 1}, {"n": 2}]
    assert [request["path"] for request in server.received] == ["/api/v1/things?page_size=500", "/api/v1/things?page=2"]
    assert all(request["authorization"] == f"Bearer {TOKEN}" for request in server.received)


def test_an_unreachable_platform_is_one_clear_error_without_the_token():
    client = client_module.PlatformClient("http://127.0.0.1:9", TOKEN, retries=1, sleep=lambda seconds: None)
    with pytest.raises(client_module.PlatformApiError) as caught:
        client.get("/health")
    assert caught.value.code == "unreachable" and caught.value.status is None
    assert "cannot reach the platform at http://127.0.0.1:9" in caught.value.message
    assert TOKEN not in str(caught.value.as_result())


def test_a_non_json_error_answer_is_reported_as_unexpected(server):
    client, _ = make_client(server, retries=0)
    server.script["/api/v1/jobs/j"] = [(502, {}, "upstream down")]
    with pytest.raises(client_module.PlatformApiError) as caught:
        client.get("/api/v1/jobs/j")
    assert caught.value.status == 502 and caught.value.code == "http_502"


def test_job_polling_returns_the_terminal_state_and_backs_off(server):
    server.script["/api/v1/jobs/j"] = [(200, {}, {"id": "j", "status": "queued"}),
                                       (200, {}, {"id": "j", "status": "running"}),
                                       (200, {}, {"id": "j", "status": "running"}),
                                       (200, {}, {"id": "j", "status": "failed", "error": "disk full"})]
    client, sleeps = make_client(server)
    job = client.wait_for_job("j", timeout=600, interval=2.0)
    assert job["status"] == "failed" and job["error"] == "disk full"
    assert sleeps == [0.25, 0.5, 1.0]


def test_job_polling_times_out_with_the_last_state(server):
    server.script["/api/v1/jobs/j"] = [(200, {}, {"id": "j", "status": "running", "progress": {"percent": 40.0}})]
    now = [0.0]
    client = client_module.PlatformClient(server.url, TOKEN, clock=lambda: now[0],
                                          sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    with pytest.raises(client_module.JobTimeout) as caught:
        client.wait_for_job("j", timeout=5, interval=2.0)
    assert caught.value.job["status"] == "running" and "still running after 5 s" in caught.value.message
