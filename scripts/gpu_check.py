#!/usr/bin/env python3
"""GPU proof for a samos ONNX model: which provider really runs, parity vs CPU, throughput and latency.

Usage: python scripts/gpu_check.py MODEL.onnx [--seconds 20] [--batch 16] [--trt-cache DIR] [--out R.json]

For each of tensorrt (fp32 and fp16), cuda and cpu it builds a ``samos.runtime.Scorer`` asking for that
provider first, records ``Scorer.provider`` (the provider that really runs; a fallback is reported,
not hidden), the max |MOS diff| against the CPU provider on the same windows, and throughput
(audio seconds per wall second at batch ``--batch``) and latency per window at batch 1 (p50/p95 ms).
Prints one JSON object. Needs onnxruntime-gpu (and tensorrt-cu13-libs for TensorRT) to show a GPU;
with the CPU build every GPU entry reports its fallback to cpu. Self-contained apart from samos itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from samos.audio import SPEC_RATE, SSL_RATE, load_audio, model_input  # noqa: E402
from samos.runtime import Scorer  # noqa: E402

DEMO = Path(__file__).resolve().parents[1] / "samos" / "assets" / "demo_call_48k.flac"
CONFIGS: dict[str, dict[str, Any]] = {
    "tensorrt_fp16": dict(providers=("tensorrt", "cuda", "cpu"), fp16=True),
    "tensorrt_fp32": dict(providers=("tensorrt", "cuda", "cpu"), fp16=False),
    "cuda": dict(providers=("cuda", "cpu")),
    "cpu": dict(providers=("cpu",)),
}


def windows(scorer: Scorer, audio: np.ndarray, sr: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows of the model's window length from real speech (looped): ([n, T], [n, 3T])."""
    x = model_input(audio, sr)
    t = scorer.info.window_samples16
    w16, w48 = x.wave16, x.wave48
    while len(w16) < t * n:
        w16, w48 = np.concatenate([w16, w16]), np.concatenate([w48, w48])
    return (
        np.stack([w16[i * t : (i + 1) * t] for i in range(n)]),
        np.stack([w48[3 * i * t : 3 * (i + 1) * t] for i in range(n)]),
    )


def bench(scorer: Scorer, w16: np.ndarray, w48: np.ndarray, batch: int, seconds: float) -> dict[str, float]:
    window_s = w16.shape[1] / SSL_RATE
    scorer.score(w16[:1], w48[:1])
    scorer.score(w16[:batch], w48[:batch])  # warm-up both shapes (engine build, cuDNN plans)
    lat: list[float] = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2 or len(lat) < 5:
        t = time.perf_counter()
        scorer.score(w16[:1], w48[:1])
        lat.append(time.perf_counter() - t)
    n_batches = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds / 2 or n_batches < 3:
        scorer.score(w16[:batch], w48[:batch])
        n_batches += 1
    wall = time.perf_counter() - t0
    ms = np.asarray(lat) * 1e3
    return {
        "audio_s_per_s_batch": round(n_batches * batch * window_s / wall, 1),
        "latency_ms_p50_batch1": round(float(np.percentile(ms, 50)), 2),
        "latency_ms_p95_batch1": round(float(np.percentile(ms, 95)), 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per provider")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--trt-cache", type=Path, default=Path("/tmp/samos_trt_cache"))
    ap.add_argument("--audio", type=Path, default=DEMO)
    ap.add_argument(
        "--only", default=",".join(CONFIGS), help="comma-separated subset of " + ",".join(CONFIGS)
    )
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    import onnxruntime as ort

    audio, sr = load_audio(args.audio)
    results: dict[str, dict[str, object]] = {}
    report: dict[str, object] = {
        "model": str(args.model),
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "results": results,
    }
    ref_mos: np.ndarray | None = None
    w16 = w48 = None
    for name in ["cpu"] + [c for c in args.only.split(",") if c and c != "cpu"]:
        if name not in CONFIGS:
            results[name] = {"error": f"unknown config {name}"}
            continue
        entry: dict[str, object] = {"requested": CONFIGS[name]["providers"][0]}
        try:
            t0 = time.perf_counter()
            scorer = Scorer(
                args.model,
                threads=None,
                trt_cache_dir=args.trt_cache,
                max_batch=max(64, args.batch),
                fallback=True,  # report what really runs instead of refusing
                **CONFIGS[name],
            )  # type: ignore[arg-type]
            if w16 is None:
                w16, w48 = windows(scorer, audio, sr, max(args.batch, 8))
            mos = scorer.score(w16, w48).mos
            entry["session_s"] = round(time.perf_counter() - t0, 2)
            entry["provider"] = scorer.provider
            entry["providers"] = scorer.providers
            entry["fell_back"] = scorer.provider != entry["requested"]
            entry["notes"] = list(scorer.notes)
            if ref_mos is None:
                ref_mos = mos
            entry["max_abs_mos_diff_vs_cpu"] = float(np.max(np.abs(mos - ref_mos)))
            entry.update(bench(scorer, w16, w48, args.batch, args.seconds))  # type: ignore[arg-type]
        except Exception as e:  # noqa: BLE001 - report every provider, whatever fails
            entry["error"] = f"{type(e).__name__}: {e}"
        results[name] = entry
        print(f"{name}: {json.dumps(entry)}", file=sys.stderr, flush=True)
    assert w16 is None or w16.shape[1] * 3 == w48.shape[1]  # type: ignore[union-attr]
    report["window_s"] = None if w16 is None else w16.shape[1] / SSL_RATE
    report["spec_rate"] = SPEC_RATE
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
