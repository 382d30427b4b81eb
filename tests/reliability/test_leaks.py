"""The leak check that runs in CI: a Monitor that keeps working keeps its memory.

Rounds of four streams (a few hundred windows per round) run through a started Monitor with a
websocket subscriber reading everything; after two warm-up rounds, eight more must leave the Python
heap (tracemalloc) where it was, give or take what one round's transient objects can explain. The long
version of this check is the soak's RSS growth (``test_soak.py``, ``samos bench soak``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tracemalloc
from dataclasses import replace
from typing import Any

from fake_source import ListSource, split
from reliability_helpers import running_monitor, small_config, speech_like, ws_url
from websockets.asyncio.client import connect

from samos.monitor.config import HttpConfig
from samos.monitor.pool import POOL

RATE = 16_000
SECONDS = 20.0
ROUNDS, WARMUP = 8, 2
MAX_GROWTH_PER_ROUND = 24 * 1024
"""Median heap growth per round (4 streams x 39 windows). Measured: a few KiB. Keeping every published
message (a leak tried on purpose) grows it by about 110 KiB a round; anything kept per window above
~150 bytes fails. The median ignores a one-off allocation elsewhere in the process."""
MAX_GROWTH_BYTES = 1024 * 1024
"""And in all, over the 8 rounds (measured: about 40 KiB)."""


CACHES = [
    tracemalloc.Filter(False, "*/samos/monitor/pool.py", all_frames=True),
    tracemalloc.Filter(False, "*/samos/runtime/buffers.py", all_frames=True),
]
"""Buffers kept to be used again, not memory a round leaves behind: the stream path's pool (its unused
part bounded by ``spare_bytes``, tests/monitor/test_pool.py; what is still viewed counts, below) and
the inference worker's batch buffers (as large as the largest batch yet: a round with a larger batch
than the warm-up's grows them)."""


def _snapshot() -> tracemalloc.Snapshot:
    return tracemalloc.take_snapshot().filter_traces(CACHES)


def _heap() -> int:
    """Python's traced heap, the caches left out, and the pool's buffers that something still views
    (windows kept by mistake would be there)."""
    gc.collect()
    return sum(t.size for t in _snapshot().traces) + POOL.used_bytes()


async def _round(monitor: Any, audio: Any) -> None:
    for i in range(4):
        await monitor.add_source(ListSource(f"s{i}", split(audio, 960), RATE))
    await asyncio.wait_for(monitor.wait_idle(), 120)


async def test_memory_stays_flat_over_many_windows(scorer: Any) -> None:
    cfg = replace(small_config(), http=HttpConfig(enabled=False))
    audio = speech_like(SECONDS, RATE, 0.05)
    received = 0

    async def read(ws: Any) -> None:
        nonlocal received
        async for _ in ws:
            received += 1

    async with running_monitor(cfg, scorer) as (monitor, _), connect(ws_url(monitor)) as ws:
        reader = asyncio.create_task(read(ws), name="test:reader")
        try:
            await _round(monitor, audio)
            tracemalloc.start(12)  # traced from the 2nd warm-up round: what it leaves (the worker's
            try:  # last batch, caches filled on first use) is in heap[0] too
                for _ in range(WARMUP - 1):
                    await _round(monitor, audio)
                heap = [_heap()]
                snap0 = _snapshot()
                for _ in range(ROUNDS):
                    await _round(monitor, audio)
                    heap.append(_heap())
                top = _snapshot().compare_to(snap0, "traceback")[:8]
            finally:
                tracemalloc.stop()
            await asyncio.sleep(0.5)  # the last fan-out batch reaches the subscriber
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    windows = (ROUNDS + WARMUP) * 4 * int((SECONDS - 1.0) / 0.5 + 1)
    assert received >= windows, (received, windows)  # the subscriber saw every window
    per_round = sorted(b - a for a, b in zip(heap, heap[1:], strict=False))
    median, growth = per_round[len(per_round) // 2], heap[-1] - heap[0]
    print(f"\nheap growth over {ROUNDS} rounds: {growth / 1024:.0f} KiB, {median / 1024:.1f} KiB a round")
    where = "\n".join(f"{s}\n  " + "\n  ".join(s.traceback.format()) for s in top)
    assert median < MAX_GROWTH_PER_ROUND and growth < MAX_GROWTH_BYTES, where
