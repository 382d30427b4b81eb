"""Check the pseudo-label sources against human ratings (the P.835 set), and measure their cost.

Nothing here fits anything: the label combination's constants come from the ITU-T E-model
(see labels.py); this module only reports how each source agrees with listeners.

Per folder (each was rated in its own test, so scores compare within a folder only):
``fb48k`` and ``wb16k`` per file, ``nb8k`` per condition (its ratings exist per condition only).
"""

from __future__ import annotations

import csv
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy import stats

from samos.audio import SPEC_RATE, load_audio, resample
from samos.data.simulate.labels import DistillMOS, combine, high_band_credit
from samos.data.simulate.measure import effective_bandwidth_hz

FOLDERS = (
    ("fb48k", "fb48k.csv", "mos"),
    ("wb16k", "wb16k.csv", "mos"),
    ("nb8k", "nb8k_condition_level.csv", "condition_mos"),
)


@dataclass(frozen=True)
class Scored:
    """One rated file (or one condition mean) with each label source's score."""

    folder: str
    path: str
    condition: str
    human: float
    teacher: float
    bandwidth_hz: float
    high_band_r: float
    label: float
    visqol: float = float("nan")


def _corr(x: list[float], y: list[float]) -> str:
    """'PCC SRCC' as text, or n/a when undefined."""
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return "   n/a   n/a"
    return f"{stats.pearsonr(x, y)[0]:6.3f}{stats.spearmanr(x, y)[0]:6.3f}"


def _visqol(pairs: list[tuple[Path, Path]]) -> tuple[list[float], float]:
    """ViSQOL v3 audio mode (48 kHz, full reference) MOS-LQO per (reference, degraded) pair, and its
    cost in CPU-s per audio-s."""
    from visqol import VisqolApi

    api = VisqolApi()
    api.create(mode="audio")
    scores, cpu, dur = [], 0.0, 0.0
    for ref, deg in pairs:
        r, sr_r = load_audio(ref)
        d, sr_d = load_audio(deg)
        r48, d48 = resample(r, sr_r, SPEC_RATE), resample(d, sr_d, SPEC_RATE)
        n = min(len(r48), len(d48))
        t = time.process_time()
        result = api.measure_from_arrays(r48[:n].astype(np.float64), d48[:n].astype(np.float64), SPEC_RATE)
        cpu += time.process_time() - t
        scores.append(float(result.moslqo))
        dur += n / SPEC_RATE
    return scores, cpu / max(dur, 1e-9)


def _condition_means(rows: list[Scored]) -> list[Scored]:
    by: dict[str, list[Scored]] = defaultdict(list)
    for r in rows:
        by[r.condition].append(r)
    return [
        replace(
            v[0],
            path="",
            human=float(np.mean([x.human for x in v])),
            teacher=float(np.mean([x.teacher for x in v])),
            label=float(np.mean([x.label for x in v])),
            bandwidth_hz=float(np.mean([x.bandwidth_hz for x in v])),
        )
        for v in by.values()
    ]


def score_folder(
    root: Path, folder: str, table: str, column: str, teacher: DistillMOS
) -> tuple[list[Scored], float, float]:
    """Score one P.835 folder: (rows, teacher CPU-s per audio-s, bandwidth-measure CPU-s per audio-s)."""
    with (root / table).open(newline="") as f:
        rows = list(csv.DictReader(f))
    out, cost_t, cost_bw, dur = [], 0.0, 0.0, 0.0
    for r in rows:
        audio, sr = load_audio(root / r["path"])
        t0 = time.process_time()
        tm = teacher.score(audio, sr)
        t1 = time.process_time()
        bw = min(effective_bandwidth_hz(resample(audio, sr, SPEC_RATE), SPEC_RATE), sr / 2)
        cost_t, cost_bw = cost_t + t1 - t0, cost_bw + time.process_time() - t1
        dur += len(audio) / sr
        out.append(
            Scored(
                folder,
                r["path"],
                r["condition"],
                float(r[column]),
                tm,
                bw,
                high_band_credit(bw),
                combine(tm, bw),
            )
        )
    return out, cost_t / max(dur, 1e-9), cost_bw / max(dur, 1e-9)


def check_p835(root: str | Path, visqol_files: int = 0, out_csv: str | Path | None = None) -> str:
    """Score every P.835 file with each label source and report PCC / SRCC against the listeners.

    Returns a printable report. ``visqol_files``: also run ViSQOL on that many fb48k files (spread
    over conditions and talkers; it is slow). ``out_csv``: write per-file scores there.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: P.835 folder not found")
    teacher = DistillMOS()
    lines = [
        "agreement with listeners, PCC SRCC: per file (fb48k, wb16k), per condition (nb8k)",
        f"{'folder':8s} {'n':>4s} {'Distill-MOS':>12s} {'label':>12s} {'bw kHz':>7s} "
        f"{'human':>6s} {'label':>6s}",
    ]
    scored: list[Scored] = []
    costs: list[tuple[float, float]] = []
    for folder, table, column in FOLDERS:
        if not (root / table).is_file():
            lines.append(f"{folder}: {root / table} missing, skipped")
            continue
        rows, c_t, c_bw = score_folder(root, folder, table, column, teacher)
        scored += rows
        costs.append((c_t, c_bw))
        units = _condition_means(rows) if folder == "nb8k" else rows
        h = [r.human for r in units]
        lines.append(
            f"{folder:8s} {len(units):4d} {_corr([r.teacher for r in units], h):>12s} "
            f"{_corr([r.label for r in units], h):>12s} "
            f"{np.mean([r.bandwidth_hz for r in units]) / 1000:7.1f} "
            f"{np.mean(h):6.2f} {np.mean([r.label for r in units]):6.2f}"
        )
    lines.append("clean (c0) means by folder, human / Distill-MOS / label (separate tests: indicative only)")
    for folder, _, _ in FOLDERS:
        c0 = [r for r in scored if r.folder == folder and r.condition == "c0"]
        if c0:
            lines.append(
                f"  {folder}: {np.mean([r.human for r in c0]):.2f} / {np.mean([r.teacher for r in c0]):.2f}"
                f" / {np.mean([r.label for r in c0]):.2f}"
            )
    if costs:
        lines.append(
            f"cost, CPU-s per audio-s (1 thread): Distill-MOS {np.mean([c[0] for c in costs]):.3f}, "
            f"bandwidth measure {np.mean([c[1] for c in costs]):.4f}"
        )
    if visqol_files:
        fb = [r for r in scored if r.folder == "fb48k"]
        pick = fb[:: max(1, len(fb) // visqol_files)][:visqol_files]
        pairs = [(root / "clean48k" / r.path.split("_", 1)[1], root / r.path) for r in pick]
        vq, vq_cost = _visqol(pairs)
        done = {r.path: replace(r, visqol=v) for r, v in zip(pick, vq, strict=True)}
        scored = [done.get(r.path, r) for r in scored]
        h = [r.human for r in pick]
        lines.append(
            f"ViSQOL audio mode, {len(pick)} fb48k files: PCC SRCC {_corr(vq, h)} "
            f"(Distill-MOS on the same files: {_corr([r.teacher for r in pick], h)}); "
            f"cost {vq_cost:.2f} CPU-s per audio-s"
        )
    if out_csv:
        with open(out_csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(asdict(scored[0])) if scored else ["folder"])
            w.writeheader()
            w.writerows(asdict(r) for r in scored)
    return "\n".join(lines)
