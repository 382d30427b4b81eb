"""float32 buffers that the stream path lends and takes back, instead of mapping fresh ones.

The monitor pins glibc's mmap threshold (:mod:`samos.monitor.heap`), so every buffer of 128 KiB or
more is mapped on its own and each of its pages is faulted in when first written: a copy into one
costs about ten times a copy into memory the process already has (docs/RELIABILITY.md, "Page
faults"). The stream path's large buffers, a hop's joined chunks, the normaliser's paired output and
the windower's buffers, come from :data:`POOL` instead.

:meth:`BufferPool.lend` returns a view of one of the pool's buffers. The pool keeps every buffer it
lends and lends it again, to any caller, once nothing but the pool refers to it: every numpy view of
an array holds a reference to it, so a buffer that a window, a batch or anything else still views is
never written again, however long it is kept. A buffer still viewed costs no memory of its own (its
views hold it anyway); of those no longer viewed the pool keeps at most ``spare_bytes`` worth (when
it must make a new one, it forgets unused ones beyond that, the largest first).
"""

from __future__ import annotations

import sys
import threading

import numpy as np

MIN_SAMPLES = 32 * 1024
"""Smaller requests (under 128 KiB) get a plain ``np.empty``: the C heap reuses such memory itself."""
STEP = 8 * 1024
"""Buffers are whole multiples of this many samples (32 KiB), so that requests of nearby sizes (a
hop's chunks vary by a chunk) share them."""


class BufferPool:
    """Lends float32 buffers and lends them again once unused (see the module doc). Thread-safe.

    ``spare_bytes``: unused buffers kept at most (bytes); ``most``: buffers tracked at most, used or
    not (a bound should something hold windows for good: beyond it the least recently lent are
    forgotten, which frees them once unused). Counters: ``lent``, ``reused`` (of those, buffers lent
    again).
    """

    def __init__(self, spare_bytes: int = 8 << 20, most: int = 4096) -> None:
        self.spare_bytes = spare_bytes
        self.most = most
        self._sizes: dict[int, list[np.ndarray]] = {}  # per size, least recently lent first
        self._count = 0
        self._lock = threading.Lock()
        self.lent = 0
        self.reused = 0

    def lend(self, n: int) -> np.ndarray:
        """An uninitialised float32 array of ``n`` samples (its contents: whatever it held before)."""
        if n < MIN_SAMPLES:
            return np.empty(n, np.float32)
        size = -(-n // STEP) * STEP
        with self._lock:
            self.lent += 1
            bucket = self._sizes.setdefault(size, [])
            for i in range(len(bucket)):  # the least recently lent first: the likeliest to be free
                if sys.getrefcount(bucket[i]) == 2:  # the list's and the argument's: nothing views it
                    self.reused += 1
                    buf = bucket.pop(i)
                    bucket.append(buf)
                    return buf[:n]
            self._trim()
            buf = np.empty(size, np.float32)
            bucket.append(buf)
            self._count += 1
        return buf[:n]

    def _unused(self) -> list[tuple[int, int]]:
        """``(size, index)`` of the buffers nothing but the pool refers to, least recently lent first
        within each size."""
        return [
            (size, i)
            for size, bucket in self._sizes.items()
            for i in range(len(bucket))
            if sys.getrefcount(bucket[i]) == 2
        ]

    def _trim(self, room: int = 1) -> None:
        """Forget unused buffers (larger sizes first) until those left fit in ``spare_bytes``, then the
        least recently lent of the largest bucket while more than ``most - room`` are tracked."""
        unused = sorted(self._unused(), key=lambda u: -u[0])
        spare = 4 * sum(size for size, _ in unused)
        drop: dict[int, list[int]] = {}
        for size, i in unused:
            if spare <= self.spare_bytes:
                break
            spare -= 4 * size
            drop.setdefault(size, []).append(i)
        for size, indices in drop.items():
            bucket = self._sizes[size]
            for i in sorted(indices, reverse=True):
                del bucket[i]
            self._count -= len(indices)
        while self._count > self.most - room:
            size = max(self._sizes, key=lambda k: len(self._sizes[k]))
            del self._sizes[size][0]
            self._count -= 1

    def trim(self) -> None:
        """Forget the unused buffers beyond ``spare_bytes`` now (the monitor does it every
        ``heap_trim_seconds``: between makings of new buffers, more may have come free)."""
        with self._lock:
            self._trim(room=0)

    def unused_bytes(self) -> int:
        """Bytes of the buffers nothing but the pool refers to now."""
        with self._lock:
            return 4 * sum(size for size, _ in self._unused())

    def used_bytes(self) -> int:
        """Bytes of the buffers something else still views now (windows in flight, say)."""
        with self._lock:
            tracked = sum(size * len(bucket) for size, bucket in self._sizes.items())
            return 4 * (tracked - sum(size for size, _ in self._unused()))

    def __len__(self) -> int:
        return self._count


POOL = BufferPool()
"""The stream path's pool (one per process)."""


def concatenate(parts: list[np.ndarray]) -> np.ndarray:
    """``np.concatenate`` of 1-D float32 arrays into a buffer lent by :data:`POOL`."""
    out = POOL.lend(sum(len(p) for p in parts))
    return np.concatenate(parts, out=out)
