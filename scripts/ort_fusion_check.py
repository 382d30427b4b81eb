#!/usr/bin/env python
"""What leaving onnxruntime's CPU-slow fusions out costs or saves, per shipped graph, side by side.

For every graph in samos/models (whole-window files, incremental frames and head graphs, int8 ones),
two single-thread CPU sessions of the same file: onnxruntime's full optimisation, and the runtime's
(``samos.runtime.providers.CPU_DISABLED_OPTIMIZERS`` left out). Both get the same batch of four 4 s
windows of the bundled demo call (real speech, at the stream gain; head graphs get the frames their
frames graph computes from it), and are timed alternately in this one run (CPU time per call).
Prints a table (``--json``: a list of rows) with the ratio and the largest output difference.

    .venv/bin/python scripts/ort_fusion_check.py [--rounds 6]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from samos.audio import load_audio, resample, to_mono
from samos.runtime.providers import CPU_DISABLED_OPTIMIZERS, session_kwargs, session_options

MODELS = Path(__file__).resolve().parents[1] / "samos" / "models"
DEMO = Path(__file__).resolve().parents[1] / "samos" / "assets" / "demo_call_48k.flac"
BATCH, SECONDS = 4, 4.0


def session(path: Path, runtime: bool) -> ort.InferenceSession:
    """One CPU thread with the runtime's session options; ``runtime``: also its left-out optimisers."""
    kw = session_kwargs(["CPUExecutionProvider"]) if runtime else {}
    return ort.InferenceSession(
        str(path), session_options(threads=1), providers=["CPUExecutionProvider"], **kw
    )


def windows() -> dict[str, np.ndarray]:
    """``wave16 [4, 64000]`` and ``wave48 [4, 192000]``: four 4 s windows of the demo call, 1 s apart."""
    x, rate = load_audio(DEMO)
    x48 = resample(to_mono(x), rate, 48_000).astype(np.float32)
    n48 = int(SECONDS * 48_000)
    w48 = np.stack([x48[i * 48_000 : i * 48_000 + n48] for i in range(2, 2 + BATCH)])
    w48 /= np.abs(w48).max() + 1e-8
    w16 = np.stack([resample(w, 48_000, 16_000) for w in w48]).astype(np.float32)
    return {"wave16": w16, "wave48": w48}


def feeds_for(
    sess: ort.InferenceSession, audio: dict[str, np.ndarray], frames: dict[str, np.ndarray]
) -> dict:
    names = [i.name for i in sess.get_inputs()]
    return {n: audio[n] if n in audio else frames[n] for n in names}


def timed(sess: ort.InferenceSession, feeds: dict, reps: int) -> float:
    t = time.process_time()
    for _ in range(reps):
        sess.run(None, feeds)
    return (time.process_time() - t) / reps


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6, help="alternations per graph (default 6)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    audio = windows()
    rows = []
    for path in sorted(MODELS.glob("*.onnx")):
        full, ours = session(path, False), session(path, True)
        frames: dict[str, np.ndarray] = {}
        if ".head" in path.name:  # its inputs: what the matching frames graph computes
            fpath = path.with_name(path.name.replace(".head", ".frames"))
            fs = session(fpath, True)
            frames = dict(
                zip([o.name for o in fs.get_outputs()], fs.run(None, feeds_for(fs, audio, {})), strict=True)
            )
        feeds = feeds_for(full, audio, frames)
        a, b = full.run(None, feeds), ours.run(None, feeds)
        diff = max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))
        reps = max(1, int(0.3 / max(timed(full, feeds, 1), 1e-4)))
        t_full = t_ours = 0.0
        for _ in range(args.rounds):
            t_full += timed(full, feeds, reps)
            t_ours += timed(ours, feeds, reps)
        rows.append(
            {
                "graph": path.name,
                "ms_full": round(1e3 * t_full / args.rounds, 2),
                "ms_runtime": round(1e3 * t_ours / args.rounds, 2),
                "full_over_runtime": round(t_full / t_ours, 3),
                "max_output_difference": diff,
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"CPU ms per call of {BATCH} windows of {SECONDS:g} s, one thread; "
        f"the runtime leaves out {', '.join(CPU_DISABLED_OPTIMIZERS)}"
    )
    print("| graph | all optimisers | runtime's | all / runtime's | largest output difference |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['graph']} | {r['ms_full']} | {r['ms_runtime']} | {r['full_over_runtime']} | "
            f"{r['max_output_difference']:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
