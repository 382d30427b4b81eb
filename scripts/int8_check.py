"""The accuracy cost of a model's int8 graphs (frames, and the head where it has one), measured on
real speech: the streaming path (`samos score`'s 4 s windows every 1 s, through the incremental pair)
with the float32 and the static-int8 graphs side by side, per set: P.835 fb48k / wb16k / nb8k and vmc24t3.

    .venv/bin/python scripts/int8_check.py [--model default|compact|M.onnx] [--json OUT]

Prints, per set, PCC / SRCC with the listeners for both graphs and the mean and largest per-file
|difference| in MOS, over the files with a scored window (the speech detector passes none of a few
of nb8k's noisiest clips; counted as not scored). P.835 figures are in-sample for the shipped models (they
trained on P.835); the comparison between the two graphs is what this measures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pearsonr, spearmanr

from samos.audio import load_audio
from samos.bench.cv import load_p835
from samos.bench.ood import default_vmc24t3, load_vmc24t3
from samos.runtime.scorer import Scorer
from samos.runtime.windows import score_many


def file_scores(scorer: Scorer, paths: list[Path]) -> np.ndarray:
    """Each file's MOS as `samos score` gives it (mean of its scored windows; NaN when the speech
    detector passed no window, as for some of nb8k's noisiest clips)."""
    results = score_many(scorer, (load_audio(p) for p in paths))
    return np.array([np.nan if getattr(r, "mos", None) is None else r.mos for r in results])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="default", help="ONNX file or embedded name (default: default)")
    ap.add_argument("--p835", default="/work/shared/data/p835", help="the P.835 folder")
    ap.add_argument("--vmc24t3", default=str(default_vmc24t3()), help="the vmc24t3 folder")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    s8 = Scorer(args.model, providers=("cpu",), threads=1)
    s32 = Scorer(args.model, providers=("cpu",), threads=1, int8=False)
    if not s8.frames_int8:
        print(f"{s8.path}: no int8 frames graph next to it (samos export --int8)", file=sys.stderr)
        return 2
    sets: dict[str, tuple[list[Path], np.ndarray]] = {}
    p835 = load_p835(args.p835)
    for name in ("fb48k", "wb16k", "nb8k"):
        clips = [c for c in p835 if c.set == name]
        sets[name] = ([c.path for c in clips], np.array([c.label for c in clips]))
    vmc = load_vmc24t3(args.vmc24t3)
    sets["vmc24t3"] = ([c.path for c in vmc], np.array([c.label for c in vmc]))
    report = {}
    graphs = "+".join(s8.int8_graphs)
    print(f"{s8.path}: float32 vs int8 ({graphs}) pair, streaming path (4 s windows every 1 s)")
    print("| set | files (not scored) | PCC fp32 / int8 | SRCC fp32 / int8 | mean / max abs diff (MOS) |")
    print("|---|---|---|---|---|")
    for name, (paths, labels) in sets.items():
        a, b = file_scores(s32, paths), file_scores(s8, paths)
        ok = np.isfinite(a) & np.isfinite(b)
        a, b, labels = a[ok], b[ok], labels[ok]
        r = {
            "files": int(ok.sum()),
            "not_scored": int((~ok).sum()),
            "pcc": [round(float(pearsonr(x, labels)[0]), 4) for x in (a, b)],
            "srcc": [round(float(spearmanr(x, labels)[0]), 4) for x in (a, b)],
            "abs_diff_mean": round(float(np.abs(a - b).mean()), 4),
            "abs_diff_max": round(float(np.abs(a - b).max()), 4),
        }
        report[name] = r
        print(
            f"| {name} | {r['files']} ({r['not_scored']}) | {r['pcc'][0]:.3f} / {r['pcc'][1]:.3f} | "
            f"{r['srcc'][0]:.3f} / "
            f"{r['srcc'][1]:.3f} | {r['abs_diff_mean']:.3f} / {r['abs_diff_max']:.3f} |"
        )
    if args.json:
        out = {"model": str(s8.path), "int8_graphs": list(s8.int8_graphs), "sets": report}
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
