"""How closely a student follows its teacher on held-out clips, and both against the corpus' labels.

    .venv/bin/python scripts/student_check.py runs/compact/distill_valid.csv [--models default,compact]

The manifest is one written by `samos data relabel` (its `mos` is the teacher's score, `mos_before`
the label the corpus came with: for the call corpus, the pseudo-label of `samos data simulate`).
Each model scores every clip as `samos score` does (4 s windows every 1 s); prints PCC / SRCC / RMSE
against both columns. The clips must not have been trained on (the corpus' validation split).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from samos.audio import load_audio
from samos.runtime.scorer import Scorer
from samos.runtime.windows import score_many


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("manifest", type=Path)
    ap.add_argument("--models", default="default,compact", help="comma-separated files or embedded names")
    args = ap.parse_args()
    rows = list(csv.DictReader(args.manifest.open()))
    if not rows or "mos_before" not in rows[0]:
        print(f"{args.manifest}: not a `samos data relabel` manifest (no mos_before column)", file=sys.stderr)
        return 2
    paths = [
        Path(r["path"]) if Path(r["path"]).is_absolute() else args.manifest.parent / r["path"] for r in rows
    ]
    teacher = np.array([float(r["mos"]) for r in rows])
    corpus = np.array([float(r["mos_before"]) for r in rows])
    print(f"{len(rows)} clips of {args.manifest}; labels: teacher {rows[0].get('label_model', '?')}, corpus")
    print("| model | vs teacher PCC / SRCC / RMSE | vs corpus labels PCC / SRCC / RMSE |")
    print("|---|---|---|")
    for name in args.models.split(","):
        scorer = Scorer(name, providers=("cpu",), threads=1)
        res = list(score_many(scorer, (load_audio(p) for p in paths)))
        got = np.array([np.nan if getattr(r, "mos", None) is None else r.mos for r in res])
        ok = np.isfinite(got)
        cells = []
        for ref in (teacher, corpus):
            x, y = got[ok], ref[ok]
            rmse = float(np.sqrt(np.mean((x - y) ** 2)))
            cells.append(f"{pearsonr(x, y)[0]:.3f} / {spearmanr(x, y)[0]:.3f} / {rmse:.3f}")
        print(f"| {name} ({int(ok.sum())} scored) | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
