"""Large uploads and downloads go through a real HTTP server in bounded memory."""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
import requests

MIB = 1024 * 1024
UPLOAD_SIZE = 20 * MIB
# The body is 20 MiB; holding it whole anywhere (client, server, hashing) would exceed this.
MEMORY_CEILING = 8 * MIB


class GeneratedBody:
    """A file-like body of `size` pseudo-random bytes made on demand, with a known length so
    the client sends Content-Length and streams it in small blocks."""

    def __init__(self, size: int):
        self.size = size
        self.sent = 0
        self.digest = hashlib.sha256()
        self.block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB pattern

    def __len__(self) -> int:
        return self.size - self.sent

    def read(self, amount: int = -1) -> bytes:
        remaining = self.size - self.sent
        amount = remaining if amount is None or amount < 0 else min(amount, remaining)
        offset = self.sent % len(self.block)
        data = (self.block[offset:] + self.block)[:amount] if amount <= len(self.block) else None
        if data is None:
            data = (self.block * (amount // len(self.block) + 2))[offset:offset + amount]
        self.sent += len(data)
        self.digest.update(data)
        return data


@pytest.fixture
def server_volume(live_server, tokens, volume_root):
    from volumes import services

    volume = services.create_volume({"name": "big", "size_gb": 1})
    headers = {"X-API-TOKEN": tokens["admin"]}
    return f"{live_server.url}/api/v1/volumes/{volume.name}/files", headers, volume


@pytest.mark.django_db(transaction=True)
def test_20_mib_upload_and_download_stream_in_bounded_memory(server_volume):
    base_url, headers, volume = server_volume
    body = GeneratedBody(UPLOAD_SIZE)
    tracemalloc.start()
    try:
        response = requests.put(f"{base_url}/big/blob.bin", data=body, headers=headers, timeout=60)
        _, upload_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 201, response.text
    assert response.json()["size"] == UPLOAD_SIZE
    assert response.json()["sha256"] == body.digest.hexdigest()
    assert upload_peak < MEMORY_CEILING, f"upload peaked at {upload_peak / MIB:.1f} MiB"

    tracemalloc.start()
    try:
        download_digest = hashlib.sha256()
        with requests.get(f"{base_url}/big/blob.bin", headers=headers, stream=True, timeout=60) as download:
            assert download.status_code == 200
            assert int(download.headers["Content-Length"]) == UPLOAD_SIZE
            for piece in download.iter_content(256 * 1024):
                download_digest.update(piece)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert download_digest.hexdigest() == body.digest.hexdigest()
    assert download_peak < MEMORY_CEILING, f"download peaked at {download_peak / MIB:.1f} MiB"
    volume.refresh_from_db()
    assert volume.used_bytes == UPLOAD_SIZE


@pytest.mark.django_db(transaction=True)
def test_chunked_upload_without_length_is_refused_cleanly_by_this_server(server_volume):
    base_url, headers, volume = server_volume

    def pieces():
        yield b"part one "
        yield b"part two"

    response = requests.put(f"{base_url}/chunked.txt", data=pieces(), headers=headers, timeout=30)
    # The development server does not de-chunk for Django, so the body cannot be read;
    # the answer says so instead of storing an empty file.
    assert response.status_code == 411
    assert response.json()["code"] == "length_required"
    listing = requests.get(f"{base_url}/", headers=headers, timeout=30).json()
    assert listing["count"] == 0
