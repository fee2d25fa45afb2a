"""Content-defined chunking of a file with FastCDC, through one reusable buffer per thread.

pyfastcdc's own `cut_stream` allocates a fresh 2 x max-size (16 MiB) buffer for every file;
with hundreds of large files that is hundreds of fresh page-faulting allocations and heap
fragmentation (measured as the largest sys-time and RSS terms of a backup). Here each
reader thread owns one buffer for its life.

Correctness: a FastCDC cut depends only on the bytes from the start of the current chunk,
up to `max_size` of them. So we cut a buffer holding at least `max_size` bytes from the
current chunk start (or the rest of the file), keep every chunk but the last, move that
last (possibly unfinished) chunk to the front, refill, and cut again from its start. The
result is identical to cutting the whole file at once (a test checks this).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from pyfastcdc import FastCDC


class Chunker:
    """Cuts files into chunks; not thread-safe (one per thread)."""

    def __init__(self, min_size: int, avg_size: int, max_size: int):
        self.fastcdc = FastCDC(avg_size=avg_size, min_size=min_size, max_size=max_size)
        self.max_size = max_size
        self.buffer = bytearray(2 * max_size)
        self.view = memoryview(self.buffer)

    def chunks(self, descriptor: int) -> Iterator[bytes]:
        """Yield the chunks of the open file `descriptor` as independent bytes objects."""
        filled = 0
        end_of_file = False
        capacity = len(self.buffer)
        while True:
            while not end_of_file and filled < capacity:
                count = os.readv(descriptor, [self.view[filled:]])
                if count == 0:
                    end_of_file = True
                filled += count
            if filled == 0:
                return
            start = 0
            for chunk in self.fastcdc.cut_buf(self.view[:filled]):
                if not end_of_file and filled - chunk.offset < self.max_size:
                    # Not enough bytes after this chunk's start to know its true end.
                    break
                yield bytes(chunk.data)
                start = chunk.offset + chunk.length
            else:
                if end_of_file:
                    return
            remaining = filled - start
            self.buffer[:remaining] = self.view[start:filled]
            filled = remaining
