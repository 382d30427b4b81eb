from __future__ import annotations

import numpy as np
import pytest
from monitor_helpers import speech_like

from samos.audio import resample
from samos.monitor.diagnostics import VadParams, analyse, bandwidth, speech_mask
from samos.runtime.vad import speech_prob

P = VadParams()


def at48(x: np.ndarray, rate: int) -> np.ndarray:
    return resample(x, rate, 48_000)


def probs(wave48: np.ndarray) -> np.ndarray:
    """The speech detector's frames of a 48 kHz window (as the monitor computes them)."""
    return speech_prob(resample(wave48, 48_000, 16_000))


def judge(wave48: np.ndarray, rate: int = 48_000, dropped: float = 0.0) -> tuple[str, dict]:
    return analyse(wave48, rate, dropped, P, probs(wave48))


def test_dead_air_is_silence() -> None:
    status, d = judge(np.zeros(48_000 * 4, np.float32))
    assert status == "silence" and d["silence"] is True and d["active_ratio"] == 0.0


@pytest.mark.parametrize("rms", [0.003, 0.05, 0.3])
def test_loud_noise_without_speech_is_no_speech_with_its_level(rms: float) -> None:
    noise = (np.random.default_rng(0).standard_normal(48_000 * 4) * rms).astype(np.float32)
    status, d = judge(noise)
    assert status == "no_speech" and d["silence"] is False
    assert d["level_db"] == pytest.approx(20 * np.log10(rms), abs=0.1)
    assert np.isnan(d["active_level_db"]) and d["active_ratio"] < P.min_active


def test_speech_is_ok() -> None:
    status, d = judge(speech_like(4, 48_000))
    assert status == "ok" and 0.2 < d["active_ratio"] <= 1.0


@pytest.mark.parametrize("snr_db", [-10, -5, 0, 20])
def test_speech_in_white_noise_is_speech_down_to_minus_10_db(snr_db: float) -> None:
    # the old energy gate called -5 dB SNR speech "low_speech" (no MOS): the worst calls went unscored
    level = 0.1
    noise = 0.7 * level * 10 ** (-snr_db / 20)
    status, d = judge(speech_like(4, 48_000, level=level, noise=noise, seed=3))
    assert status == "ok", d


def test_levels_in_dbov() -> None:
    sine = np.sin(2 * np.pi * 1000 * np.arange(48_000 * 2) / 48_000).astype(np.float32)
    _, d = analyse(sine, 48_000, 0.0, P, np.ones(2 * 31, np.float32))
    assert d["level_db"] == pytest.approx(-3.01, abs=0.02)
    half = np.concatenate([sine, np.zeros_like(sine)]) * 0.1
    speech = np.r_[np.ones(62), np.zeros(62)].astype(np.float32)  # the detector's frames: 2 s speech
    _, d = analyse(half, 48_000, 0.0, P, speech)
    assert d["active_level_db"] == pytest.approx(-23.01, abs=0.05)  # level over speech frames only
    assert d["level_db"] == pytest.approx(-26.02, abs=0.05)
    assert d["active_ratio"] == 0.5


def test_speech_mask_maps_detector_frames_onto_20ms_frames() -> None:
    # detector frames are 512 samples (32 ms) at 16 kHz, the first one `offset` samples into the window
    speech = np.array([True, False, True])
    got = speech_mask(speech, offset=100, n_frames=8)  # 20 ms frames: centres at 160, 480, 800, ...
    centres = np.arange(8) * 320 + 160 - 100
    want = [0 <= c < 3 * 512 and bool(speech[c // 512]) for c in centres]
    assert got.tolist() == want
    assert got.tolist() == [True, True, False, False, True, False, False, False]


def test_clipping_ratio() -> None:
    x = np.clip(speech_like(4, 48_000, level=0.5), -0.5, 0.5) * 2
    _, d = judge(x)
    assert d["clipping"] > 0.01
    assert judge(speech_like(4, 48_000, level=0.05))[1]["clipping"] == 0.0


@pytest.mark.parametrize(("rate", "band"), [(8_000, "nb"), (16_000, "wb"), (32_000, "swb"), (48_000, "fb")])
def test_bandwidth_class_follows_the_source_rate(rate: int, band: str) -> None:
    x = at48(speech_like(4, rate, level=0.1), rate)
    hz, got = bandwidth(x)
    assert got == band and hz <= rate / 2 + 500


def test_reports_rate_and_dropped() -> None:
    _, d = judge(speech_like(4, 48_000), 44_100, 0.125)
    assert d["rate"] == 44_100 and d["dropped_seconds"] == 0.125


def test_gate_defaults_are_the_monitors() -> None:
    from samos.monitor.config import WindowConfig

    w = WindowConfig()
    assert P == VadParams(w.silence_db, w.speech_threshold, w.min_active)


def _clip_noise_gaps(x: np.ndarray) -> np.ndarray:
    """Real speech with what the diagnostics look for: a clipped stretch, dead air and loud noise."""
    rate = 48_000
    y = x.copy()
    y[3 * rate : 5 * rate] = np.clip(y[3 * rate : 5 * rate] * 8, -1, 1)
    y[8 * rate : 13 * rate] = 0.0
    y[16 * rate : 21 * rate] = np.random.default_rng(1).standard_normal(5 * rate).astype(np.float32) * 0.05
    return y


@pytest.mark.parametrize(("window", "hop"), [(4.0, 1.0), (2.0, 0.5), (4.0, 0.25), (3.01, 1.0)])
def test_frame_stats_give_the_figures_of_measuring_each_window(window: float, hop: float) -> None:
    # 0.25 s hops put every other window off the 20 ms grid, a 3.01 s window ends in a partial frame:
    # those windows are measured whole; the figures agree either way, bit for bit
    from fake_source import split
    from monitor_helpers import DEMO_CALL

    from samos.audio import load_audio
    from samos.monitor.config import WindowConfig
    from samos.monitor.source import AudioChunk
    from samos.monitor.stream import StreamProcessor

    x = _clip_noise_gaps(load_audio(DEMO_CALL)[0][: 48_000 * 24])
    cfg = WindowConfig(window_seconds=window, hop_seconds=hop)
    sizes = list(np.random.default_rng(7).integers(100, 9_000, size=400))
    chunks = [AudioChunk(c, 48_000) for c in split(x, sizes)]
    cached, whole = StreamProcessor(48_000, cfg), StreamProcessor(48_000, cfg)
    whole.frame_stats = None
    a = [p for c in chunks for p in cached.push(c)] + cached.flush()
    b = [p for c in chunks for p in whole.push(c)] + whole.flush()
    assert len(a) == len(b) > 10
    for pa, pb in zip(a, b, strict=True):
        assert pa.status == pb.status
        assert pa.diagnostics.keys() == pb.diagnostics.keys()
        for k, v in pa.diagnostics.items():
            assert v == pb.diagnostics[k] or (np.isnan(v) and np.isnan(pb.diagnostics[k])), (
                k,
                pa.window.index,
            )
    statuses = {p.status for p in a}
    assert {"ok", "silence", "no_speech"} <= statuses and any(p.diagnostics["clipping"] > 0 for p in a)


def test_frame_stats_measure_each_frame_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor_helpers import DEMO_CALL

    from samos.audio import load_audio
    from samos.monitor import diagnostics
    from samos.monitor.config import WindowConfig
    from samos.monitor.source import AudioChunk
    from samos.monitor.stream import StreamProcessor

    measured: list[bytes] = []
    band_powers = diagnostics.band_powers

    def counting(frames: np.ndarray) -> np.ndarray:
        measured.extend(f.tobytes() for f in frames)
        return band_powers(frames)

    monkeypatch.setattr(diagnostics, "band_powers", counting)
    x = load_audio(DEMO_CALL)[0][: 48_000 * 20]
    proc = StreamProcessor(48_000, WindowConfig(window_seconds=4.0, hop_seconds=1.0))
    windows = [p for k in range(0, len(x), 4_800) for p in proc.push(AudioChunk(x[k : k + 4_800], 48_000))]
    assert len(windows) == 16
    assert len(set(measured)) == len(measured)  # no frame's spectrum measured twice
    # each window averages 25 to 50 spectra: measured window by window, 16 windows would take 400-800
    assert len(measured) < 16 * diagnostics.MAX_SPECTRUM_FRAMES / 3


def test_spectrum_frames_are_on_the_streams_grid() -> None:
    from samos.monitor.diagnostics import MAX_SPECTRUM_FRAMES, spectrum_frames

    every = np.arange(200)  # a 4 s window, speech throughout
    a, b = spectrum_frames(every, first=400), spectrum_frames(every, first=450)  # windows 1 s apart
    assert len(a) == len(b) == MAX_SPECTRUM_FRAMES
    assert set((a + 400).tolist()) & set((b + 450).tolist()) == set(range(452, 600, 4))
    assert spectrum_frames(np.arange(120), first=1).tolist() == list(range(3, 120, 4))  # stride 4: 30
    few = np.array([3, 17, 40])
    assert spectrum_frames(few, first=7).tolist() == few.tolist()  # up to 50: all of them
    odd = np.arange(1, 200, 2)  # speech only on odd frames: off every stride's grid
    got = spectrum_frames(odd, first=0)
    assert 0 < len(got) <= MAX_SPECTRUM_FRAMES and set(got.tolist()) <= set(odd.tolist())
