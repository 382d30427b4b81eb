"""How short may an input be before the default model's score stops meaning anything?

For every per-file P.835 clip (fb48k, wb16k) and every vmc24t3 clip, the model scores L seconds of
the clip (``--where first``: its start, as a cut-off file would reach it, leading silence included;
``--where middle``: centred, so the excerpt is speech) and the whole clip. Per L it
prints, per set: the median and 90th percentile of |score(L) - score(whole)|, and the PCC / SRCC of
score(L) with the listeners' MOS (the whole-clip figures are the last row). The model's own minimum
(``samos.min_seconds``) is bypassed for this measurement only.

    OMP_NUM_THREADS=1 python scripts/min_length_check.py [--where first|middle] [--model M.onnx]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from samos.audio import load_audio, model_input
from samos.bench.cv import PER_FILE_SETS, load_p835
from samos.bench.ood import default_vmc24t3, load_vmc24t3
from samos.runtime import Scorer
from samos.train import metrics


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None)
    p.add_argument("--p835", default="/work/shared/data/p835")
    p.add_argument("--vmc24t3", default=str(default_vmc24t3()))
    p.add_argument("--lengths", default="0.1,0.25,0.5,0.75,1.0,1.5,2.0,3.0")
    p.add_argument("--where", choices=("first", "middle"), default="middle")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    scorer = Scorer(args.model, providers=("cpu",), threads=1)
    lengths = [float(v) for v in args.lengths.split(",")]
    sets: dict[str, list[tuple[str, float]]] = {}
    for c in load_p835(args.p835, PER_FILE_SETS):
        sets.setdefault(c.set, []).append((str(c.path), c.label))
    sets["vmc24t3"] = [(str(c.path), c.label) for c in load_vmc24t3(args.vmc24t3)]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, items in sets.items():
        whole, labels = [], []
        short: dict[float, list[float]] = {L: [] for L in lengths}
        for path, label in items:
            audio, sr = load_audio(path)
            mi = model_input(audio, sr)
            res = scorer.session.run(["mos"], {"wave16": mi.wave16[None], "wave48": mi.wave48[None]})
            whole.append(float(np.asarray(res[0]).reshape(-1)[0]))
            labels.append(label)
            for L in lengths:
                n = min(len(mi.wave16), max(int(L * 16_000), scorer.info.min_samples16))
                a = 0 if args.where == "first" else (len(mi.wave16) - n) // 2
                feed = {"wave16": mi.wave16[None, a : a + n], "wave48": mi.wave48[None, 3 * a : 3 * (a + n)]}
                short[L].append(float(np.asarray(scorer.session.run(["mos"], feed)[0]).reshape(-1)[0]))
        w, y = np.array(whole), np.array(labels)
        rows: dict[str, dict[str, float]] = {}
        for L in lengths:
            s = np.array(short[L])
            a = metrics.agreement(s, y)
            d = np.abs(s - w)
            rows[f"{L:g}"] = {
                "median_abs_diff": float(np.median(d)),
                "p90_abs_diff": float(np.percentile(d, 90)),
                "pcc": a.pcc,
                "srcc": a.srcc,
            }
        a = metrics.agreement(w, y)
        rows["whole"] = {"median_abs_diff": 0.0, "p90_abs_diff": 0.0, "pcc": a.pcc, "srcc": a.srcc}
        out[name] = rows
        if not args.json:
            print(f"{name} (n={len(items)})   L s | median |d|  p90 |d| |  PCC   SRCC")
            for k, r in rows.items():
                print(
                    f"  {k:>8} | {r['median_abs_diff']:9.3f} {r['p90_abs_diff']:8.3f} | "
                    f"{r['pcc']:.3f} {r['srcc']:.3f}"
                )
    if args.json:
        print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
