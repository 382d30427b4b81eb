"""ONNX/torch parity: run the exported graph (onnxruntime, CPU) and the torch model on the same audio.

Random noise and real speech, at several lengths and batch sizes; the graph's raw outputs (before the
calibration the runtime applies) are compared with torch's ``mean`` and ``sqrt(var)``. Real speech is
resampled to both model rates by the runtime's own path (``samos.audio.model_input``, soxr).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from samos.audio import SPEC_RATE, SSL_RATE, load_audio, model_input, resample
from samos.runtime.modelinfo import INPUT_WAVE16, INPUT_WAVE48, OUTPUT_MOS, OUTPUT_STD

DEFAULT_AUDIO = Path(__file__).resolve().parent.parent / "assets" / "demo_call_48k.flac"
"""Real speech shipped with the package (P.835 reference clips, 48 kHz): the default parity input."""
DEFAULT_SECONDS = (0.5, 3.0, 10.0)
DEFAULT_BATCHES = (1, 3)
TOLERANCE = {"fp32": 1e-3, "fp16": 0.02}
"""Largest accepted |onnx - torch| in MOS units, per precision."""


@dataclass(frozen=True)
class ParityRow:
    """One comparison: ``source`` (random|speech), input length, batch size and the max |diff|."""

    source: str
    seconds: float
    batch: int
    max_diff_mos: float
    max_diff_std: float
    ok: bool


@dataclass
class ParityReport:
    """All comparisons of one model file against torch."""

    path: str
    precision: str
    tolerance: float
    rows: list[ParityRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    error: str | None = None
    """Set when onnxruntime could not load or run the file at all."""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.rows) and all(r.ok for r in self.rows)

    @property
    def worst(self) -> float:
        return max((max(r.max_diff_mos, r.max_diff_std) for r in self.rows), default=float("nan"))

    def table(self) -> str:
        """Human-readable table of diffs, one line per comparison."""
        head = f"{'source':<8} {'seconds':>7} {'batch':>5} {'max|dmos|':>11} {'max|dstd|':>11}  result"
        lines = [f"parity of {self.path} ({self.precision}, tolerance {self.tolerance:g} MOS)", head]
        for r in self.rows:
            lines.append(
                f"{r.source:<8} {r.seconds:>7.2f} {r.batch:>5d} "
                f"{r.max_diff_mos:>11.2e} {r.max_diff_std:>11.2e}  " + ("ok" if r.ok else "FAIL")
            )
        lines += [f"skipped: {s}" for s in self.skipped]
        if self.error:
            lines.append(f"error: {self.error}")
        lines.append(f"{'PASS' if self.ok else 'FAIL'}: worst |diff| {self.worst:.2e} MOS")
        return "\n".join(lines)


def speech_pool(files: Sequence[str | Path] | None = None) -> np.ndarray:
    """Real speech at 48 kHz, mono float32: the given files (or the bundled demo) concatenated."""
    parts = []
    for f in files or [DEFAULT_AUDIO]:
        audio, sr = load_audio(f)
        parts.append(resample(audio, sr, SPEC_RATE))
    return np.concatenate(parts).astype(np.float32)


def _speech_batch(pool: np.ndarray, seconds: float, batch: int) -> tuple[np.ndarray, np.ndarray]:
    n48 = int(round(seconds * SPEC_RATE))
    if len(pool) < n48:
        pool = np.tile(pool, int(np.ceil(n48 / len(pool))) + 1)
    w16, w48 = [], []
    starts = (
        np.linspace(0, len(pool) - n48, num=batch + 2)[1:-1].astype(int) if len(pool) > n48 else [0] * batch
    )
    for s in starts:
        x = model_input(pool[s : s + n48], SPEC_RATE)
        w16.append(x.wave16)
        w48.append(x.wave48)
    t = min(len(a) for a in w16)
    return np.stack([a[:t] for a in w16]), np.stack([a[: 3 * t] for a in w48])


def _random_batch(rng: np.random.Generator, seconds: float, batch: int) -> tuple[np.ndarray, np.ndarray]:
    t = int(round(seconds * SSL_RATE))
    w16 = (0.1 * rng.standard_normal((batch, t))).astype(np.float32)
    w48 = (0.1 * rng.standard_normal((batch, 3 * t))).astype(np.float32)
    return w16, w48


def verify_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    *,
    precision: str = "fp32",
    tolerance: float | None = None,
    seconds: Sequence[float] = DEFAULT_SECONDS,
    batches: Sequence[int] = DEFAULT_BATCHES,
    audio_files: Sequence[str | Path] | None = None,
    seed: int = 0,
    threads: int = 1,
) -> ParityReport:
    """Compare ``onnx_path`` (onnxruntime CPU) with the torch ``model`` on random and real audio."""
    tol = TOLERANCE[precision] if tolerance is None else tolerance
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    report = ParityReport(str(onnx_path), precision, tol)
    try:
        sess = ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's own exception types
        report.error = f"onnxruntime cannot load the file: {' '.join(str(e).split())[:400]}"
        return report
    needs = [i.name for i in sess.get_inputs()]
    meta = sess.get_modelmeta().custom_metadata_map
    min_seconds = float(meta.get("samos.min_seconds", "0"))
    rng = np.random.default_rng(seed)
    pool = speech_pool(audio_files)
    model = model.eval()
    for source in ("random", "speech"):
        for sec in seconds:
            if sec < min_seconds:
                report.skipped.append(f"{source} {sec} s (< min_seconds {min_seconds})")
                continue
            for b in batches:
                w16, w48 = _random_batch(rng, sec, b) if source == "random" else _speech_batch(pool, sec, b)
                feeds = {INPUT_WAVE16: w16, INPUT_WAVE48: w48}
                mos, std = sess.run([OUTPUT_MOS, OUTPUT_STD], {n: feeds[n] for n in needs})
                with torch.no_grad():
                    t16 = torch.from_numpy(w16) if INPUT_WAVE16 in needs else None
                    t48 = torch.from_numpy(w48) if INPUT_WAVE48 in needs else None
                    mean, var = model(t16, t48)
                d_mos = float(np.max(np.abs(np.asarray(mos, np.float64) - mean.double().numpy())))
                d_std = float(np.max(np.abs(np.asarray(std, np.float64) - var.double().sqrt().numpy())))
                ok = bool(np.isfinite(d_mos) and np.isfinite(d_std) and d_mos <= tol and d_std <= tol)
                report.rows.append(ParityRow(source, float(sec), int(b), d_mos, d_std, ok))
    return report
