"""How far streaming scores (a fixed gain per stream, the incremental pair) move from per-window-peak
scores (the whole-window graph), on real speech, through the monitor's own windowing (4 s / 1 s).

    PYTHONPATH=. python scripts/gain_shift.py [--p835 /work/shared/data/p835] [--json]

Streams: the bundled demo call; every fb48k P.835 clip on its own (a stream per clip); and one call
made of all fb48k clips joined in a seeded random order (the level and the quality change every
clip). Prints the per-window |difference| (mean, p95, max) and the per-stream mean difference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from samos.audio import load_audio, to_mono
from samos.monitor.config import WindowConfig
from samos.monitor.source import AudioChunk
from samos.monitor.stream import StreamProcessor
from samos.runtime.incremental import WindowJob
from samos.runtime.scorer import DEFAULT_MODEL, Scorer


def shift(scorer: Scorer, audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(per-window-peak MOS, fixed-gain MOS) of the ``ok`` windows of one stream."""
    proc = StreamProcessor(rate, WindowConfig(), scorer.info.min_seconds)
    pending = proc.push(AudioChunk(audio, rate, 0, 0.0)) + proc.flush()
    state = scorer.new_stream()
    peak, fixed = [], []
    for p in pending:
        if p.status != "ok":
            continue
        w = p.window
        peak.append(float(scorer.score(w.wave16[None], w.wave48[None]).mos[0]))
        fixed.append(float(scorer.score_windows([WindowJob(state, w.start, w.wave16, w.wave48)]).mos[0]))
    return np.array(peak), np.array(fixed)


def summary(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    d = np.concatenate([f - p for p, f in pairs]) if pairs else np.zeros(0)
    per_stream = np.array([np.mean(f) - np.mean(p) for p, f in pairs if len(p)])
    return {
        "streams": len(per_stream),
        "windows": int(d.size),
        "window_abs_mean": round(float(np.mean(np.abs(d))), 4),
        "window_abs_p95": round(float(np.percentile(np.abs(d), 95)), 4),
        "window_abs_max": round(float(np.max(np.abs(d))), 4),
        "window_mean": round(float(np.mean(d)), 4),
        "stream_mean_abs_mean": round(float(np.mean(np.abs(per_stream))), 4),
        "stream_mean_abs_max": round(float(np.max(np.abs(per_stream))), 4),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--p835", type=Path, default=Path("/work/shared/data/p835"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    scorer = Scorer(DEFAULT_MODEL, providers=("cpu",), threads=1)
    if scorer.pair is None:
        print("gain_shift: the default model has no incremental pair", file=sys.stderr)
        return 2
    demo, rate = load_audio(str(DEFAULT_MODEL.parents[1] / "assets" / "demo_call_48k.flac"))
    out = {"demo_call": summary([shift(scorer, to_mono(demo), rate)])}
    clips = sorted((args.p835 / "fb48k").glob("*.wav"))
    if clips:
        audio = [to_mono(load_audio(str(c))[0]) for c in clips]
        out["p835_fb48k_clips"] = summary([shift(scorer, a, 48_000) for a in audio])
        order = np.random.default_rng(0).permutation(len(audio))
        out["p835_fb48k_joined_call"] = summary(
            [shift(scorer, np.concatenate([audio[i] for i in order]), 48_000)]
        )
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
