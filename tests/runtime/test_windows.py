"""Windowed scoring of recordings through the monitor's path: the windows, the speech gate's statuses,
the overall score, batching invariance, unscorable audio."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tiny_onnx import tiny_reference

from samos.audio import AudioError, model_input, resample
from samos.runtime import FileScore, Scorer, score_many, score_waveform

P835 = Path("/work/shared/data/p835/fb48k")
DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"


@functools.cache
def _demo_call() -> np.ndarray:
    audio, sr = sf.read(str(DEMO), dtype="float32", always_2d=True)
    assert sr == 48_000
    return audio.mean(axis=1)


def _speech(seconds: float, sr: int = 48_000, seed: int = 0) -> np.ndarray:
    """``seconds`` of real speech (the bundled demo call, looped from a ``seed``-chosen offset) at ``sr``:
    the monitor's speech gate scores it, as it would not a synthetic tone."""
    call = _demo_call()
    x = np.resize(np.roll(call, -(seed * 123_457) % len(call)), int(round(seconds * 48_000)))
    return (resample(x, 48_000, sr) if sr != 48_000 else x).astype(np.float32)


def test_windows_and_overall_score(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=1)  # min 0.25 s
    audio = _speech(6.7)
    fs = score_waveform(s, audio, 48_000)  # the monitor's defaults: 4 s every 1 s, then the end
    assert [(w.start_s, w.end_s) for w in fs.windows] == [(0.0, 4.0), (1.0, 5.0), (2.0, 6.0), (2.7, 6.7)]
    assert [w.status for w in fs.windows] == ["ok"] * 4 and fs.scored == 4
    assert fs.seconds == pytest.approx(6.7)
    assert fs.mos == pytest.approx(np.mean([w.mos for w in fs.windows]), abs=1e-6)
    assert fs.std == pytest.approx(np.sqrt(np.mean([w.std**2 for w in fs.windows])), abs=1e-6)
    assert {"level_db", "active_ratio", "loss_ratio"} <= set(fs.windows[0].diagnostics)
    # each window is the graph applied to that slice of the once-resampled signal
    x = model_input(audio, 48_000)
    mos, _ = tiny_reference(x.wave16[None, 16000:80000], x.wave48[None, 48000:240000])
    assert fs.windows[1].mos == pytest.approx(float(mos[0]), abs=1e-4)


def test_gated_windows_get_the_monitors_status_and_no_mos(tiny_model: Path) -> None:
    """Dead air in the middle of a recording: its windows are ``silence`` as the monitor would say,
    unscored, and the file's MOS is the mean of the windows that were scored."""
    s = Scorer(tiny_model, providers=("cpu",), threads=1)
    audio = np.concatenate([_speech(4.0), np.zeros(6 * 48_000, np.float32), _speech(4.0, seed=1)])
    fs = score_waveform(s, audio, 48_000, hop_s=2.0)
    statuses = [w.status for w in fs.windows]
    assert statuses == ["ok", "ok", "silence", "silence", "ok", "ok"], statuses
    assert fs.windows[2].mos is None and fs.windows[2].std is None
    assert fs.scored == 4 and fs.statuses() == {"ok": 4, "silence": 2} and fs.status == "ok"
    assert fs.mos == pytest.approx(np.mean([w.mos for w in fs.windows if w.mos is not None]), abs=1e-6)
    silent = score_waveform(s, np.zeros(5 * 48_000, np.float32), 48_000)
    assert silent.mos is None and silent.std is None and silent.scored == 0 and len(silent.windows) == 2
    assert silent.status == "silence", "a file without a MOS says why"


def test_short_clip_scored_whole(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=1)
    fs = score_waveform(s, _speech(0.8, 16_000), 16_000)
    assert len(fs.windows) == 1 and fs.windows[0].end_s == pytest.approx(0.8)
    with pytest.raises(AudioError, match="too short"):
        score_waveform(s, _speech(0.1, 16_000), 16_000)


def test_custom_window_and_hop(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=1)
    fs = score_waveform(s, _speech(3.0), 48_000, window_s=1.0, hop_s=0.5)
    assert len(fs.windows) == 5
    with pytest.raises(ValueError, match="shorter than the model's minimum"):
        score_waveform(s, _speech(3.0), 48_000, window_s=0.1)
    with pytest.raises(ValueError, match="positive"):
        score_waveform(s, _speech(3.0), 48_000, hop_s=0)
    with pytest.raises(ValueError, match="must not be longer"):
        score_waveform(s, _speech(3.0), 48_000, window_s=1.0, hop_s=2.0)


def _real_clips() -> list[tuple[np.ndarray, int]]:
    import soundfile as sf

    if P835.is_dir():
        files = sorted(P835.glob("*.wav"))[:5]
        return [tuple(sf.read(str(f), dtype="float32")) for f in files]  # type: ignore[misc]
    audio, sr = sf.read(str(DEMO), dtype="float32")
    return [(audio[i * sr * 5 : (i + 1) * sr * 5 + i * 7000], sr) for i in range(5)]


def test_batched_equals_one_by_one(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=1)
    items: list[tuple[np.ndarray, int] | BaseException] = [
        *_real_clips(),
        (_speech(0.1), 48_000),
        (_speech(7.3, 16_000), 16_000),
    ]
    one = list(score_many(s, items, batch_size=1))
    many = list(score_many(s, items, batch_size=16))
    assert len(one) == len(many) == len(items)
    for a, b in zip(one, many, strict=True):
        assert type(a) is type(b)
        if isinstance(a, FileScore):
            assert isinstance(b, FileScore)
            assert a.mos == pytest.approx(b.mos, abs=1e-5)
            assert [w.start_s for w in a.windows] == [w.start_s for w in b.windows]
            np.testing.assert_allclose([w.mos for w in a.windows], [w.mos for w in b.windows], atol=1e-5)
    assert isinstance(one[-2], AudioError)


def test_errors_pass_through_in_order(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=1)
    bad = np.full(48_000, np.nan, np.float32)
    items: list[tuple[np.ndarray, int] | BaseException] = [
        (_speech(1.0), 48_000),
        AudioError("x.wav: cannot decode"),
        (bad, 48_000),
        OSError("disk"),
        (_speech(2.5), 44_100),
    ]
    out = list(score_many(s, items, batch_size=4))
    assert [type(o).__name__ for o in out] == [
        "FileScore",
        "AudioError",
        "AudioError",
        "AudioError",
        "FileScore",
    ]
    assert "NaN" in str(out[2]) and "disk" in str(out[3])


def test_batch_size_validation(tiny_model: Path) -> None:
    s = Scorer(tiny_model, providers=("cpu",), threads=1)
    with pytest.raises(ValueError, match="batch_size"):
        list(score_many(s, [], batch_size=0))


def test_a_model_with_a_pair_scores_files_as_the_monitor_streams_them() -> None:
    from samos.audio import load_audio
    from samos.monitor.source import AudioChunk
    from samos.monitor.stream import StreamProcessor
    from samos.runtime.incremental import StreamFrames, WindowJob
    from samos.runtime.scorer import DEFAULT_MODEL
    from samos.runtime.windows import window_config

    scorer = Scorer(DEFAULT_MODEL, providers=("cpu",), threads=1)
    audio, rate = load_audio(str(DEFAULT_MODEL.parents[1] / "assets" / "demo_call_48k.flac"))
    audio = audio[int(12 * rate) : int(19.5 * rate)]
    proc = StreamProcessor(rate, window_config(scorer), scorer.info.min_seconds)
    state = StreamFrames()
    want = [
        float(
            scorer.score_windows([WindowJob(state, p.window.start, p.window.wave16, p.window.wave48)]).mos[0]
        )
        for p in proc.push(AudioChunk(audio, rate, 0, 0.0)) + proc.flush()
        if p.status == "ok"
    ]
    for batch in (2, 16):
        got = [
            w.mos for w in score_waveform(scorer, audio, rate, batch_size=batch).windows if w.mos is not None
        ]
        assert got == pytest.approx(want, abs=1e-5)
    assert len(want) >= 4
