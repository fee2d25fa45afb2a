"""Content-defined chunking of a file with FastCDC, through one reusable buffer per thread.

pyfastcdc's own `cut_stream` allocates a fresh 2 x max-size (16 MiB) buffer for every file;
with hundreds of large files that is hundreds of fresh page-faulting allocations and heap
fragmentation (measured as the largest sys-time and RSS terms of a backup). Here each
reader thread owns one buffer for its life.

Correctness: a FastCDC cut depends only on the bytes from the start of the current chunk,
up to `max_size` of them. So we cut a buffer holding at least `max_size` bytes from the
current chunk start (or the rest of the file), keep every chunk but the last, move that
last (possibly unfinished) chunk to the front, refill, and cut again from its start. The
result is identical to cutting the whole file at once (a test checks this). A file smaller
than the buffer is read into a buffer of its size (grown when the file grew meanwhile).
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
        self.buffer = bytearray()
        self.view = memoryview(self.buffer)

    def _reserve(self, capacity: int, keep: int) -> None:
        """Grow the buffer to `capacity` bytes, keeping its first `keep`. Grown on demand
        because a fresh 16 MiB buffer is zero-filled and page-faulted: for a backup of a
        few small files that was most of its fixed cost."""
        if len(self.buffer) < capacity:
            grown = bytearray(capacity)
            grown[:keep] = self.view[:keep]
            self.buffer, self.view = grown, memoryview(grown)

    def chunks(self, descriptor: int, size_hint: int | None = None) -> Iterator[bytes]:
        """Yield the chunks of the open file `descriptor` as independent bytes objects.

        `size_hint` (the file's size when it was opened) lets a small file use a small
        buffer; a file that turns out larger gets the full one."""
        full = 2 * self.max_size
        capacity = full if size_hint is None else min(full, size_hint + 1)  # +1: see EOF
        self._reserve(capacity, 0)
        filled = 0
        end_of_file = False
        while True:
            while not end_of_file and filled < capacity:
                count = os.readv(descriptor, [self.view[filled:capacity]])
                if count == 0:
                    end_of_file = True
                filled += count
            if not end_of_file and capacity < full:
                capacity = full  # the file grew since its size was taken
                self._reserve(capacity, filled)
                continue
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
