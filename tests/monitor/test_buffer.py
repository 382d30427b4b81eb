"""ChunkQueue: batches, no joining across lost audio, drop-oldest reported as dropped."""

from __future__ import annotations

import numpy as np

from samos.monitor.sources.buffer import ChunkQueue


def test_batches_and_keeps_each_gap_in_place() -> None:
    q = ChunkQueue(1000, batch_seconds=0.05)
    q.put(np.ones(20, np.float32), 0, t=0.0)
    assert not q.ready(0.01) and q.wait_limit(0.01) == 0.04
    q.put(np.ones(20, np.float32), 0, t=0.02)
    q.put(np.full(20, 2, np.float32), 7, t=0.04)  # follows 7 lost samples
    assert q.ready(0.04)  # 60 samples >= 50
    first = q.take()
    assert (first.frames, first.dropped, first.t_capture) == (40, 0, 0.02)
    second = q.take()
    assert (second.frames, second.dropped) == (20, 7) and len(q) == 0 and q.buffered == 0


def test_overflow_drops_the_oldest_and_reports_it() -> None:
    q = ChunkQueue(1000, batch_seconds=1.0, max_samples=50)
    for i in range(4):
        q.put(np.full(20, i, np.float32), 3 if i == 1 else 0, t=float(i))
    assert q.overflow == 40 and q.buffered == 40
    chunk = q.take()
    assert chunk.dropped == 20 + 3 + 20 and chunk.frames == 40 and chunk.samples[0] == 2


def test_empty_puts_are_ignored() -> None:
    q = ChunkQueue(8000)
    q.put(np.zeros(0, np.float32), 0, 0.0)
    assert len(q) == 0 and q.wait_limit(0.0) is None
