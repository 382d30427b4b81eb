"""Per-clip predictions of ``samos bench accuracy`` as CSV files (``--per-clip``, ``--predictions``)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from samos.bench.accuracy_metrics import BenchError
from samos.bench.cv import Clip

CLIP_COLUMNS = ("set", "file", "talker", "condition", "label", "fold")


def clip_key(c: Clip) -> tuple[str, str]:
    """``(set, file stem)``: names a clip across copies of the set (e.g. a FLAC copy of the WAVs)."""
    return c.set, c.path.stem


def write_per_clip(
    path: str | Path, clips: Sequence[Clip], folds: np.ndarray, preds: dict[str, np.ndarray]
) -> Path:
    """Per-clip predictions as CSV: ``set, file, talker, condition, label, fold``, then one column a model."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with open(p, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*CLIP_COLUMNS, *preds])
        for i, c in enumerate(clips):
            w.writerow(
                [
                    c.set,
                    c.path.stem,
                    c.talker,
                    c.condition,
                    f"{c.label:.4f}",
                    int(folds[i]),
                    *(f"{float(v[i]):.6f}" for v in preds.values()),
                ]
            )
    return p


def read_per_clip(path: str | Path, clips: Sequence[Clip]) -> dict[str, np.ndarray]:
    """Models' per-clip predictions from a ``write_per_clip`` CSV, aligned to ``clips`` by (set, file stem).

    Raises BenchError when the file is missing or lacks a clip.
    """
    p = Path(path)
    if not p.is_file():
        raise BenchError(f"{p}: no such predictions file")
    with open(p, newline="") as f:
        rows = list(csv.DictReader(f))
    names = [k for k in (rows[0].keys() if rows else []) if k not in CLIP_COLUMNS]
    by_key = {(r["set"], r["file"]): r for r in rows}
    out: dict[str, np.ndarray] = {}
    for name in names:
        vals = []
        for c in clips:
            row = by_key.get(clip_key(c))
            if row is None or not row.get(name):
                raise BenchError(f"{p}: no {name} prediction for {c.set}/{c.path.name}")
            vals.append(float(row[name]))
        out[name] = np.array(vals)
    return out


def _per_clip_path(path: str, scheme: str, several: bool) -> Path:
    p = Path(path)
    return p.with_name(f"{p.stem}.{scheme}{p.suffix}") if several else p
