from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from monitor_helpers import speech_like

from samos.monitor.metrics import MonitorMetrics
from samos.monitor.worker import InferenceWorker, WindowDropped


class Recording:
    """Wraps the real Scorer: records batch sizes; optionally holds the first call until released."""

    def __init__(self, scorer: Any, hold: bool = False) -> None:
        self.scorer = scorer
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold:
            self.release.set()

    def score(self, w16: np.ndarray, w48: np.ndarray) -> Any:
        self.entered.set()
        self.release.wait(10)
        self.sizes.append(len(w16))
        return self.scorer.score(w16, w48)


def window(seed: int, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    x48 = speech_like(seconds, 48_000, level=0.02 * (seed + 1), seed=seed)
    return x48[::3].copy(), x48


async def test_batches_across_streams_and_matches_single_scoring(scorer) -> None:  # noqa: ANN001
    rec = Recording(scorer, hold=True)
    w = InferenceWorker(rec, max_batch=4, queue_size=64)
    w.start()
    try:
        first = w.submit(*window(99))
        await asyncio.to_thread(rec.entered.wait, 5)  # the thread is busy with `first`
        wins = [window(i) for i in range(6)]
        futs = [w.submit(a, b) for a, b in wins]
        rec.release.set()
        results = await asyncio.gather(first, *futs)
        assert rec.sizes == [1, 4, 2]
        for (a, b), (mos, std) in zip(wins, results[1:], strict=True):
            ref = scorer.score(a[None], b[None])
            assert mos == pytest.approx(float(ref.mos[0]), abs=1e-6)
            assert std == pytest.approx(float(ref.std[0]), abs=1e-6)
    finally:
        await w.stop()


async def test_different_lengths_are_never_stacked(scorer) -> None:  # noqa: ANN001
    rec = Recording(scorer)
    w = InferenceWorker(rec, max_batch=8)
    w.start()
    try:
        futs = [w.submit(*window(i, 1.0 if i % 2 else 1.5)) for i in range(6)]
        assert len(await asyncio.gather(*futs)) == 6
    finally:
        await w.stop()


async def test_full_queue_drops_the_oldest_and_never_blocks_the_loop(scorer) -> None:  # noqa: ANN001
    rec = Recording(scorer, hold=True)
    metrics = MonitorMetrics()
    w = InferenceWorker(rec, max_batch=2, queue_size=3, metrics=metrics)
    w.start()
    try:
        busy = w.submit(*window(0))
        await asyncio.to_thread(rec.entered.wait, 5)
        t0 = time.perf_counter()
        futs = [w.submit(*window(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)  # the loop runs while the model is stuck
        assert time.perf_counter() - t0 < 1.0
        rec.release.set()
        results = await asyncio.gather(busy, *futs, return_exceptions=True)
        assert [isinstance(r, WindowDropped) for r in results] == [False, True, True, False, False, False]
        assert w.dropped == 2 and metrics.get_sample_value("samos_worker_dropped_windows_total") == 2
    finally:
        await w.stop()


async def test_model_errors_reach_the_waiting_stream(scorer) -> None:  # noqa: ANN001
    w = InferenceWorker(scorer)
    w.start()
    try:
        with pytest.raises(ValueError, match="too short"):
            await w.submit(np.zeros(100, np.float32), np.zeros(300, np.float32))
        assert len(await asyncio.gather(w.submit(*window(1)))) == 1  # the worker lives on
    finally:
        await w.stop()
    with pytest.raises(RuntimeError):
        w.submit(*window(1))


@pytest.mark.parametrize("int8", [False, True])
async def test_incremental_windows_of_several_streams_are_batched_exactly(int8: bool) -> None:
    """Batched across streams, each window scores as the pair scores it alone (float32: to 1e-4).
    In int8 a frame at a window's recomputed edge can round to the next 8-bit level, so a window may
    move a few thousandths of a MOS (2.8e-3 seen with the default of 2026-12-05)."""
    from samos.audio import load_audio
    from samos.runtime.scorer import DEFAULT_MODEL, Scorer

    scorer = Scorer(DEFAULT_MODEL, providers=("cpu",), threads=1, int8=int8)
    calls: list[int] = []
    score_windows = scorer.score_windows

    def counted(jobs: Any) -> Any:
        calls.append(len(jobs))
        return score_windows(jobs)

    scorer.score_windows = counted  # type: ignore[method-assign]
    audio, rate = load_audio(str(DEFAULT_MODEL.parents[1] / "assets" / "demo_call_48k.flac"))
    x48 = (audio.mean(axis=1) if audio.ndim == 2 else audio)[int(10 * rate) : int(17 * rate)]
    import soxr

    x48 = soxr.resample(x48, rate, 48_000).astype(np.float32)
    streams = [(x48, soxr.resample(x48, 48_000, 16_000).astype(np.float32)) for x48 in (x48, 0.1 * x48[::-1])]
    states = [scorer.new_stream(), scorer.new_stream()]
    w = InferenceWorker(scorer, max_batch=8, queue_size=64)
    w.start()
    try:
        futs, wins = [], []
        for s in range(0, 3 * 16_000 + 1, 16_000):  # 4 s windows every 1 s, both streams
            for k, (x48, x16) in enumerate(streams):
                w48, w16 = x48[3 * s : 3 * s + 192_000], x16[s : s + 64_000]
                wins.append((k, w16, w48))
                futs.append(w.submit(w16, w48, states[k], s))
        results = await asyncio.gather(*futs)
    finally:
        await w.stop()
    assert sum(calls) == 8 and len(calls) < 8  # scored incrementally, in batches across streams
    assert scorer.pair is not None and scorer.frames_int8 == int8
    for (k, w16, w48), (mos, _) in zip(wins, results, strict=True):
        gain = np.array([states[k].gain])  # type: ignore[union-attr]
        raw, _ = scorer.pair.engine.whole(w16[None], w48[None], gain)
        assert mos == pytest.approx(float(raw[0]), abs=1e-2 if int8 else 1e-4)


async def test_tells_a_scorer_that_takes_it_the_windows_are_finite_and_copies_no_lone_window(
    scorer,  # noqa: ANN001
) -> None:
    # the monitor's windows come from its normaliser (finite by construction): the real Scorer skips
    # its NaN/Inf scan when told; a window scored alone is passed as a view of itself
    seen: list[tuple[bool, bool]] = []

    class Told:
        def score(self, w16: np.ndarray, w48: np.ndarray, *, finite: bool = False) -> Any:
            seen.append((finite, np.shares_memory(w48, b)))
            return scorer.score(w16, w48, finite=finite)

    a, b = window(3)
    w = InferenceWorker(Told(), max_batch=4, queue_size=8)
    w.start()
    try:
        mos, std = await w.submit(a, b)
    finally:
        await w.stop()
    assert seen == [(True, True)]
    ref = scorer.score(a[None], b[None])
    assert (mos, std) == (float(ref.mos[0]), float(ref.std[0]))
