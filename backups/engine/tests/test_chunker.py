"""Streaming through a reused buffer cuts exactly where FastCDC cuts the whole file."""

import os
import random

import pytest
from pyfastcdc import FastCDC

from backups.engine.chunker import Chunker

MIN, AVERAGE, MAXIMUM = 64 * 1024, 128 * 1024, 1024 * 1024


def reference_chunks(data: bytes) -> list[bytes]:
    return [bytes(chunk.data) for chunk in FastCDC(
        avg_size=AVERAGE, min_size=MIN, max_size=MAXIMUM).cut_buf(data)] if data else []


@pytest.mark.parametrize("size", [0, 1, 100_000, MAXIMUM, MAXIMUM + 1, 2 * MAXIMUM,
                                  2 * MAXIMUM + 5, 9 * MAXIMUM + 12345])
def test_chunks_match_fastcdc_on_the_whole_file(tmp_path, size):
    generator = random.Random(size)
    # Half random, half zeros: the zero run forces max-size chunks and buffer carry-overs.
    data = generator.randbytes(size // 2) + bytes(size - size // 2)
    path = tmp_path / "file"
    path.write_bytes(data)
    descriptor = os.open(path, os.O_RDONLY)
    try:
        chunker = Chunker(MIN, AVERAGE, MAXIMUM)
        mine = list(chunker.chunks(descriptor))
    finally:
        os.close(descriptor)
    reference = [bytes(chunk.data) for chunk in FastCDC(
        avg_size=AVERAGE, min_size=MIN, max_size=MAXIMUM).cut_buf(data)] if data else []
    assert mine == reference
    assert b"".join(mine) == data


@pytest.mark.parametrize("hint_fraction", [1.0, 0.5, 0.0])
def test_a_size_hint_below_the_real_size_still_cuts_the_whole_file(tmp_path, hint_fraction):
    # The size hint is the size at lstat time; the file may have grown since. One chunker
    # serves files of every size in turn, as a reader thread does.
    chunker = Chunker(MIN, AVERAGE, MAXIMUM)
    for size in (300_000, 5 * MAXIMUM + 7, 1000, 3 * MAXIMUM):
        data = random.Random(size).randbytes(size)
        path = tmp_path / f"file-{size}"
        path.write_bytes(data)
        descriptor = os.open(path, os.O_RDONLY)
        try:
            mine = list(chunker.chunks(descriptor, int(size * hint_fraction)))
        finally:
            os.close(descriptor)
        assert mine == reference_chunks(data)


def test_a_small_file_gets_a_small_buffer(tmp_path):
    chunker = Chunker(MIN, AVERAGE, MAXIMUM)
    (tmp_path / "small").write_bytes(b"x" * 200_000)
    descriptor = os.open(tmp_path / "small", os.O_RDONLY)
    try:
        assert b"".join(chunker.chunks(descriptor, 200_000)) == b"x" * 200_000
    finally:
        os.close(descriptor)
    assert len(chunker.buffer) == 200_001  # not 2 x the maximum chunk size
