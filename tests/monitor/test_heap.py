"""The C heap: glibc's statistics, and free pages handed back by ``malloc_trim`` (by the Monitor too).

The heap is fragmented the way the monitor's is: freed 64 KiB blocks (below glibc's mmap threshold,
so they come from the heap) between blocks that stay allocated, so that glibc can neither merge them
nor give them back by shrinking the heap's top. Their pages stay resident until something trims the
heap. The tests count those pages (``mincore``), not the process's RSS: in a long pytest process
other objects are freed and unmapped at any time.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
import mmap
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from samos.monitor import heap
from samos.monitor.app import Monitor
from samos.monitor.config import MonitorConfig, WebsocketConfig

pytestmark = pytest.mark.skipif(heap.stats() is None, reason="the C library is not glibc 2.33+")

BLOCK = 64 << 10
BLOCKS = 1024  # 64 MiB, half of it freed


@functools.cache
def _libc() -> ctypes.CDLL:
    """This process's C library with ``malloc``, ``free`` and ``mincore`` typed."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return libc


@pytest.fixture
def fragmented() -> Iterator[list[int]]:
    """32 MiB of freed, touched heap blocks between live ones (see the module doc); yields the
    addresses of the freed ones."""
    libc = _libc()
    blocks = []
    for _ in range(BLOCKS):
        p = libc.malloc(BLOCK)
        assert p, "malloc failed"
        ctypes.memset(p, 1, BLOCK)  # resident
        blocks.append(p)
    for p in blocks[::2]:
        libc.free(p)
    yield blocks[::2]
    for p in blocks[1::2]:
        libc.free(p)


def resident_mb(blocks: list[int]) -> float:
    """How much of the freed ``blocks`` is resident, MB: the whole pages inside each (the first
    bytes of a free chunk hold the allocator's list pointers, so its first page stays)."""
    libc = _libc()
    page = mmap.PAGESIZE
    pages = 0
    for p in blocks:
        start = (p + page) // page * page
        end = (p + BLOCK) // page * page
        vec = ctypes.create_string_buffer((end - start) // page)
        assert libc.mincore(start, end - start, vec) == 0, ctypes.get_errno()
        pages += sum(b & 1 for b in vec.raw)
    return pages * page / 2**20


def test_stats_in_mb() -> None:
    s = heap.stats()
    assert s is not None and s.in_use > 0 and s.free >= 0 and s.mmapped >= 0


def test_trim_gives_free_pages_back(fragmented: list[int]) -> None:
    stats = heap.stats()
    assert stats is not None and stats.free >= 30  # the freed blocks are kept by the allocator
    before = resident_mb(fragmented)
    assert before >= 24
    assert heap.trim() is True
    assert resident_mb(fragmented) < 4


PROBE = 16 << 20
"""A block larger than any hole a fresh process's heap has (glibc maps a block of at least its
threshold only when no free chunk can hold it), and below glibc's largest threshold (32 MiB)."""

_PROBE_PROGRAM = f"""
import ctypes, json
from samos.monitor import heap
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]

def mapped_while_holding(nbytes):
    heap.trim()  # the free top of the heap goes: only a mapping or a grown heap can hold the block
    before = heap.stats()
    assert before.free < nbytes / 2**20, f"a hole may hold the probe: {{before}}"
    p = libc.malloc(nbytes)
    assert p, "malloc failed"
    during = heap.stats()
    libc.free(p)
    return during.mmapped - before.mmapped

out = {{}}
assert heap.fix_mmap_threshold(heap.MAX_MMAP_THRESHOLD) is True
out["max"] = mapped_while_holding({PROBE})
assert heap.fix_mmap_threshold(128 << 10) is True
out["fixed"] = mapped_while_holding({PROBE})
print(json.dumps(out))
"""


def _mmapped_mb_while_holding(nbytes: int = PROBE) -> float:
    """How much more of the heap is in blocks mapped on their own while ``nbytes`` are allocated, in
    this process: its holes (after hundreds of tests, tens of MB) are first filled with 64 KiB
    blocks, so that no free chunk can hold the probe and glibc must map it or grow the heap."""
    heap.trim()
    libc = _libc()
    free = heap.stats()
    assert free is not None
    fillers = [libc.malloc(BLOCK) for _ in range(int(free.free * 2**20) // BLOCK + 16)]
    try:
        before = heap.stats()
        p = libc.malloc(nbytes)
        assert p, "malloc failed"
        during = heap.stats()
        libc.free(p)
    finally:
        for f in fillers:
            libc.free(f)
    assert before is not None and during is not None
    return during.mmapped - before.mmapped


def test_fixed_mmap_threshold_maps_large_blocks_on_their_own() -> None:
    # In a fresh process: after hundreds of tests this one's heap has holes larger than the probe.
    run = subprocess.run([sys.executable, "-c", _PROBE_PROGRAM], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    mapped = json.loads(run.stdout)
    assert mapped["max"] < 1  # from the heap: kept there when freed
    assert mapped["fixed"] >= 15.9  # mapped: unmapped when freed
    with pytest.raises(ValueError, match="mmap threshold"):
        heap.fix_mmap_threshold(-1)


def _config(tmp_path: Path, trim: float | None, threshold: int | None = None) -> MonitorConfig:
    cfg = MonitorConfig(ws=WebsocketConfig(port=0))
    return replace(cfg, heap_trim_seconds=trim, heap_mmap_threshold_bytes=threshold)


@pytest.mark.parametrize("trim", [0.05, None])
async def test_monitor_trims_the_heap_when_configured(
    tmp_path: Path,
    scorer,
    fragmented: list[int],
    trim: float | None,  # noqa: ANN001
) -> None:
    mon = Monitor(_config(tmp_path, trim), scorer)
    before = resident_mb(fragmented)
    assert before >= 24
    await mon.start()
    try:
        await asyncio.sleep(0.5)
        after = resident_mb(fragmented)
    finally:
        await mon.stop()
    if trim is None:  # nothing gives the freed blocks back
        assert after > before - 2
    else:
        assert after < 4


@pytest.mark.parametrize("threshold", [128 << 10, None])
async def test_monitor_pins_the_mmap_threshold_when_configured(
    tmp_path: Path,
    scorer,  # noqa: ANN001
    threshold: int | None,
) -> None:
    heap.fix_mmap_threshold(heap.MAX_MMAP_THRESHOLD)  # as glibc leaves it after a 32 MB block was freed
    mon = Monitor(_config(tmp_path, None, threshold), scorer)
    try:
        await mon.start()
        mapped = _mmapped_mb_while_holding()
    finally:
        await mon.stop()
        heap.fix_mmap_threshold(128 << 10)
    assert (mapped >= 15.9) == (threshold is not None)


def test_heap_settings_are_checked() -> None:
    from samos.config import ConfigError

    with pytest.raises(ConfigError, match="heap_trim_seconds"):
        MonitorConfig(heap_trim_seconds=0.0)
    with pytest.raises(ConfigError, match="heap_mmap_threshold_bytes"):
        MonitorConfig(heap_mmap_threshold_bytes=64 << 20)
