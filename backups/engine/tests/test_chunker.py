"""Streaming through a reused buffer cuts exactly where FastCDC cuts the whole file."""

import os
import random

import pytest
from pyfastcdc import FastCDC

from backups.engine.chunker import Chunker

MIN, AVERAGE, MAXIMUM = 64 * 1024, 128 * 1024, 1024 * 1024


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
