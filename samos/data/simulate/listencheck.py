"""A listening check by measurement of a simulated corpus (``python -m samos.data.simulate.listencheck DIR``).

Reads every clip of ``DIR/manifest.csv`` and reports what an engineer would check by ear: durations,
active speech levels (clean clips must sit at the configured level), peaks and samples at full
scale (only the clipping stages should put many there), whether the SNR that the plan asked for is
what the file carries (estimated blind: active level minus the 10th percentile frame power, so it
ranks rather than equals), whether the measured bandwidth of the file follows the speech-path
bandwidth of the label, and how closely the label follows the teacher.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.stats import spearmanr

from samos.data.simulate.measure import active_level_db, effective_bandwidth_hz, frame_power_db

FULL_SCALE = 0.999


def _spread(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, dtype=np.float64)
    if a.size == 0:
        return {}
    return {
        k: round(float(np.percentile(a, q)), 2)
        for k, q in (("min", 0), ("p5", 5), ("median", 50), ("p95", 95), ("max", 100))
    }


def _spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(spearmanr(a, b)[0]), 3)


def listen_check(folder: str | Path) -> dict[str, object]:
    """Measurements of every clip in ``folder`` (a corpus made by ``samos data simulate``)."""
    base = Path(folder)
    with (base / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    dur, act, peak, clean_act = [], [], [], []
    full: list[tuple[str, float]] = []
    plan_snr, est_snr, bw_file, bw_path = [], [], [], []
    for r in rows:
        x, sr = sf.read(base / r["path"], dtype="float32")
        dur.append(len(x) / sr)
        level = active_level_db(x, sr)
        act.append(level)
        peak.append(float(20 * np.log10(np.abs(x).max() + 1e-9)))
        if r["degradations"] == "clean":
            clean_act.append(level)
        share = float(np.mean(np.abs(x) >= FULL_SCALE))
        if share > 0.001:
            full.append((r["degradations"], round(100 * share, 2)))
        if r.get("snr_db"):
            plan_snr.append(float(r["snr_db"]))
            est_snr.append(level - float(np.percentile(frame_power_db(x, sr), 10)))
        bw_file.append(effective_bandwidth_hz(x, sr))
        bw_path.append(float(r["path_bw_hz"]))
    return {
        "clips": len(rows),
        "seconds": _spread(dur),
        "active_dbov": _spread(act),
        "clean_active_dbov": _spread(clean_act),
        "peak_dbfs": _spread(peak),
        "clips_over_0.1pct_at_full_scale": full,
        "snr_planned_vs_estimated_spearman": _spearman(plan_snr, est_snr),
        "noise_clips": len(plan_snr),
        "bandwidth_file_vs_path_spearman": _spearman(bw_file, bw_path),
        "label_vs_teacher_spearman": _spearman(
            [float(r["mos"]) for r in rows], [float(r["teacher_mos"]) for r in rows]
        ),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samos.data.simulate.listencheck", description=__doc__)
    p.add_argument("folder", help="a corpus folder (with manifest.csv)")
    args = p.parse_args(argv)
    print(json.dumps(listen_check(args.folder), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
