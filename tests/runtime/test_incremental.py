"""Incremental scoring with the shipped model's pair equals whole-window scoring (same gain) on real
speech: any chunking, hops that divide the window, batches across streams, restarts and gaps."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from samos.audio import load_audio
from samos.monitor.normalise import Normaliser
from samos.monitor.source import AudioChunk
from samos.monitor.window import Window, Windower
from samos.runtime.incremental import FrameGeometry, StreamFrames, WindowJob, pair_paths
from samos.runtime.modelinfo import ModelFileError
from samos.runtime.scorer import DEFAULT_MODEL, Scorer

DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"
TOL = 1e-4
"""MOS: ten times tighter than the issue's 1e-3 budget (the path reaches about 1e-6). Edge frames
counted one too few move scores by only ~1e-5, so the geometry itself is checked too."""


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    """The shipped pair with its float32 frames graph: the exact path (the int8 one is tested below)."""
    s = Scorer(None, providers=("cpu",), threads=1, int8=False)
    assert s.pair is not None, "the shipped model has its incremental pair (samos export --from-onnx)"
    # distillmos: reflect-padded STFT + six 3-wide convs in time -> 7 edge frames each side
    assert s.pair.geometry == FrameGeometry(160, 7, 7)
    return s


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, int]:
    audio, rate = load_audio(str(DEMO))
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    # 10.7 s and 150 samples: the monitor's last window (ending at the end) is then off the 10 ms grid
    return audio[int(20 * rate) : int(30.7 * rate) + 150].astype(np.float32), rate


def windows_of(
    audio: np.ndarray, rate: int, window: float, hop: float, seed: int, drop_at: float | None = None
) -> list[Window]:
    """The monitor's normaliser and windower over randomly sized chunks (a lost stretch of 0.3 s
    at ``drop_at`` seconds when given), flushed at the end."""
    rng = np.random.default_rng(seed)
    norm, win = Normaliser(rate), Windower(window, hop, 1.0)
    out: list[Window] = []
    i = 0
    while i < len(audio):
        n = int(rng.integers(1, int(0.7 * rate)))
        dropped = 0
        if drop_at is not None and i <= drop_at * rate < i + n:
            dropped, drop_at = int(0.3 * rate), None
        out += win.push(norm.push(AudioChunk(audio[i : i + n], rate, dropped, 0.0)))
        i += n
    out += win.push(norm.flush())
    return out + win.flush()


def incremental(scorer: Scorer, state: StreamFrames, windows: list[Window]) -> np.ndarray:
    return np.array(
        [scorer.score_windows([WindowJob(state, w.start, w.wave16, w.wave48)]).raw_mos[0] for w in windows]
    )


def whole(scorer: Scorer, windows: list[Window], gains: list[float]) -> np.ndarray:
    assert scorer.pair is not None
    return np.array(
        [
            scorer.pair.engine.whole(w.wave16[None], w.wave48[None], np.array([g]))[0][0]
            for w, g in zip(windows, gains, strict=True)
        ]
    )


@pytest.mark.parametrize(("hop", "seed"), [(1.0, 0), (0.25, 1), (2.0, 2), (4.0, 3)])
def test_equals_whole_windows_for_any_chunking_and_hop(
    scorer: Scorer, speech: tuple[np.ndarray, int], hop: float, seed: int
) -> None:
    windows = windows_of(*speech, 4.0, hop, seed)
    if hop != 2.0:  # (with a 2 s hop no audio is left for a last window)
        assert windows[-1].final and windows[-1].start % 160  # off the grid: computed whole
    state = StreamFrames()
    got = incremental(scorer, state, windows)
    peak = np.max(np.abs(windows[0].wave16))
    assert state.gain == pytest.approx(1 / (peak + 1e-8))
    want = whole(scorer, windows, [state.gain] * len(windows))
    assert np.max(np.abs(got - want)) < TOL, np.abs(got - want)
    if hop == 1.0:  # the point: the first and the last window whole, the others 1 s + two 14-frame edges
        assert len(windows) == 8
        assert state.computed_samples == 2 * 64000 + 6 * (16000 + 2 * 14 * 160)


def test_the_shipped_int8_frames_stay_close_on_real_speech(
    scorer: Scorer, speech: tuple[np.ndarray, int]
) -> None:
    """The default's static-int8 frames and head graphs: within the model card's figures of the exact
    path (mean |difference| 0.010-0.019 MOS per file on P.835 and vmc24t3)."""
    s8 = Scorer(None, providers=("cpu",), threads=1)
    assert s8.frames_int8, "the shipped model has its int8 frames graph (samos export --int8)"
    assert s8.int8_graphs == ("frames", "head"), "and its int8 head (--int8-head)"
    windows = windows_of(*speech, 4.0, 1.0, 0)
    exact = incremental(scorer, StreamFrames(), windows)
    got = incremental(s8, StreamFrames(), windows)
    diff = np.abs(got - exact)
    assert 0 < diff.max() < 0.1 and diff.mean() < 0.05, diff


def test_batches_across_streams_equal_one_stream_at_a_time(
    scorer: Scorer, speech: tuple[np.ndarray, int]
) -> None:
    audio, rate = speech
    streams = [windows_of(audio, rate, 4.0, 0.5, 4), windows_of(0.2 * audio[::-1].copy(), rate, 4.0, 0.5, 5)]
    alone = [incremental(scorer, StreamFrames(), ws) for ws in streams]
    states = [StreamFrames(), StreamFrames()]
    jobs = [
        (k, i, WindowJob(states[k], w.start, w.wave16, w.wave48))
        for k in (0, 1)
        for i, w in enumerate(streams[k])
    ]
    jobs.sort(key=lambda j: (j[2].start, j[0]))  # interleaved, oldest first per stream
    got = [np.zeros(len(ws)) for ws in streams]
    rng = np.random.default_rng(6)
    while jobs:  # batches of 1..5: a stream may have several windows in one batch
        n = int(rng.integers(1, 6))
        batch, jobs = jobs[:n], jobs[n:]
        res = scorer.score_windows([j[2] for j in batch])
        for (k, i, _), m in zip(batch, res.raw_mos, strict=True):
            got[k][i] = m
    for g, a in zip(got, alone, strict=True):
        assert np.max(np.abs(g - a)) < 1e-5


def test_threads_scoring_at_once_equal_one_stream_at_a_time(
    scorer: Scorer, speech: tuple[np.ndarray, int]
) -> None:
    """The engine reuses its batch buffers from call to call: one set per thread, so streams scored
    from several threads at once (serve replicas, several workers) still get their own scores."""
    audio, rate = speech
    streams = [windows_of(audio, rate, 4.0, 1.0, 8), windows_of(0.3 * audio[::-1].copy(), rate, 4.0, 1.0, 9)]
    alone = [incremental(scorer, StreamFrames(), ws) for ws in streams]
    got: list[np.ndarray | None] = [None, None]
    start = threading.Barrier(2)

    def run(k: int) -> None:
        start.wait()
        got[k] = incremental(scorer, StreamFrames(), streams[k])

    threads = [threading.Thread(target=run, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for g, a in zip(got, alone, strict=True):
        assert g is not None and np.max(np.abs(g - a)) < 1e-5


def test_restarts_gaps_and_lost_audio(scorer: Scorer, speech: tuple[np.ndarray, int]) -> None:
    windows = windows_of(*speech, 4.0, 1.0, 7, drop_at=5.2)
    state = StreamFrames()
    scored = [0, 1, 4, 5]  # windows 2 and 3 not scored (no speech, a dropped window): a gap
    got = list(incremental(scorer, state, [windows[i] for i in scored]))
    gains = [state.gain] * len(scored)
    state.reset()  # the stream restarts: a new gain from its next window
    rest = list(range(6, len(windows)))
    got += list(incremental(scorer, state, [windows[i] for i in rest]))
    gains += [state.gain] * len(rest)
    assert gains[0] != gains[-1]
    want = whole(scorer, [windows[i] for i in scored + rest], gains)
    assert np.max(np.abs(np.array(got) - want)) < TOL


def test_geometry_grid() -> None:
    geo = FrameGeometry(160, 7, 7)
    assert geo.frames_of(320, 64000) == (2, 400)
    assert geo.frames_of(100, 64000) is None  # off the 10 ms grid
    assert geo.frames_of(0, 64100) is None
    assert geo.frames_of(0, 160 * 14) is None  # no room between the edges
    with pytest.raises(ModelFileError, match="bad samos.incremental"):
        FrameGeometry.from_json('{"frame_samples": 160}', "m.frames.onnx")


def test_a_pair_of_other_weights_is_not_used(tmp_path: Path, model_factory) -> None:  # noqa: ANN001
    path = model_factory()
    for src, dst in zip(pair_paths(DEFAULT_MODEL), pair_paths(path), strict=True):
        shutil.copy(src, dst)
    s = Scorer(path, providers=("cpu",), threads=1)
    assert s.pair is None and s.new_stream() is None
    assert any("weights differ" in n for n in s.notes)
    with pytest.raises(ValueError, match="no incremental pair"):
        s.score_windows([])
