"""The C heap of the monitor process (glibc's malloc): what it holds, and giving freed memory back.

The monitor's large buffers are short-lived numpy arrays (decoded audio, 1 MB windows at 48 kHz,
resampler output) allocated on the event loop's thread between small long-lived objects (history
messages, websocket frames). glibc serves them from its heap once its dynamic mmap threshold has
risen past their size, and keeps what is freed between live blocks: the process's RSS then creeps
up with memory that is free (``mallinfo2``'s ``fordblks``) while what is in use stays flat
(measured in docs/RELIABILITY.md, the RTP soak). :func:`trim` (``malloc_trim(0)``) hands the free
pages of every arena back to the system.

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

log = logging.getLogger(__name__)
_MB = 2.0**20
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


async def trim_every(period: float) -> None:
    """Run until cancelled: :func:`trim` every ``period`` seconds, in a thread (the walk over the
    arenas must not hold the event loop); returns at once where the C library is not glibc."""
    if _libc() is None:
        return
    while True:
        await asyncio.sleep(period)
        t0 = time.perf_counter()
        await asyncio.to_thread(trim)
        ms = 1000 * (time.perf_counter() - t0)
        log.log(logging.INFO if ms >= SLOW_MS else logging.DEBUG, "heap trimmed in %.1f ms", ms)
