"""The C heap of the monitor process (glibc's malloc): what it holds, and keeping freed memory out of it.

The monitor's large buffers are numpy arrays (the windower's buffers, resampler output) allocated
between smaller long-lived blocks. glibc maps a block of at least its mmap threshold on its own and
unmaps it when freed, but it raises that threshold to the size of every such block freed (up to 32
MB): after the first few windows every buffer comes from the heap, and what is freed between live
blocks is kept. The process's RSS then creeps up with memory that is free (``mallinfo2``'s
``fordblks``) while what is in use stays flat (measured in docs/RELIABILITY.md, the RTP soak).
:func:`fix_mmap_threshold` (``mallopt``) pins the threshold, so large buffers go back to the system
when freed; :func:`trim` (``malloc_trim(0)``) hands the free pages of the heap's remaining holes
back. The price: every buffer that large is mapped afresh, so writing it faults in each of its pages
(a 1.2 MB copy costs 18x what it costs in memory the heap already holds). The hot path therefore
makes few of them: windows are views (samos.monitor.window), batches reuse one buffer
(samos.monitor.worker), and the diagnostics keep their temporaries under 128 KiB.

Everything here is a no-op returning None where the C library is not glibc (macOS, musl).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

from samos.monitor.pool import POOL

log = logging.getLogger(__name__)
_MB = 2.0**20
M_MMAP_THRESHOLD = -3
"""``mallopt``'s parameter number for the mmap threshold (glibc's malloc.h)."""
MAX_MMAP_THRESHOLD = 32 << 20
"""The largest threshold glibc accepts on 64-bit systems (``HEAP_MAX_SIZE / 2``)."""
SLOW_MS = 20.0
"""A trim that took this long (ms) is logged at INFO (else DEBUG)."""


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks")
        + ("uordblks", "fordblks", "keepcost")
    ]


@dataclass(frozen=True)
class HeapStats:
    """glibc's heap over all arenas, MB: ``in_use`` (allocated chunks), ``free`` (freed chunks the
    allocator keeps), ``mmapped`` (large chunks mapped on their own, given back when freed)."""

    in_use: float
    free: float
    mmapped: float


@cache
def _libc() -> Any:
    """The process's C library when it is glibc 2.33+ (``mallinfo2``), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _Mallinfo2
        libc.malloc_trim.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.restype = ctypes.c_int
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def stats() -> HeapStats | None:
    """The heap now (None: not glibc)."""
    libc = _libc()
    if libc is None:
        return None
    m = libc.mallinfo2()
    return HeapStats(round(m.uordblks / _MB, 1), round(m.fordblks / _MB, 1), round(m.hblkhd / _MB, 1))


def trim() -> bool | None:
    """Give the heap's free pages back to the system (``malloc_trim(0)``): True when some were,
    None where the C library is not glibc. Takes the arenas' locks for a few milliseconds."""
    libc = _libc()
    return None if libc is None else bool(libc.malloc_trim(0))


def fix_mmap_threshold(nbytes: int) -> bool | None:
    """Blocks of at least ``nbytes`` are mapped on their own and unmapped when freed, from now on
    (glibc no longer moves the threshold). True when glibc took it, None where it is not glibc;
    ValueError outside 0 .. 32 MiB."""
    if not 0 <= nbytes <= MAX_MMAP_THRESHOLD:
        raise ValueError(f"mmap threshold must be in [0, {MAX_MMAP_THRESHOLD}] bytes, got {nbytes}")
    libc = _libc()
    return None if libc is None else bool(libc.mallopt(M_MMAP_THRESHOLD, nbytes))


async def trim_every(period: float) -> None:
    """Run until cancelled: every ``period`` seconds, let go of the stream path's unused buffers beyond
    its spare (:meth:`samos.monitor.pool.BufferPool.trim`), then :func:`trim` in a thread (the walk
    over the arenas must not hold the event loop; not where the C library is not glibc)."""
    while True:
        await asyncio.sleep(period)
        POOL.trim()
        if _libc() is None:
            continue
        t0 = time.perf_counter()
        await asyncio.to_thread(trim)
        ms = 1000 * (time.perf_counter() - t0)
        log.log(logging.INFO if ms >= SLOW_MS else logging.DEBUG, "heap trimmed in %.1f ms", ms)
