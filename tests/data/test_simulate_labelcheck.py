"""`samos data labelcheck` on a tiny P.835-shaped folder (real teacher, synthetic audio)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.data.simulate import degrade
from samos.data.simulate.labelcheck import check_p835


def _p835(root: Path) -> None:
    rng = np.random.default_rng(0)
    base = (degrade.coloured_noise("pink", 48_000, 48_000, rng) * 0.05).astype(np.float32)
    (root / "fb48k").mkdir()
    (root / "nb8k").mkdir()
    fb = ["path,mos,condition"]
    nb = ["path,condition_mos,condition"]
    for k, snr in enumerate((40.0, 20.0, 5.0)):
        noisy = degrade.add_noise(base, 48_000, degrade.coloured_noise("white", len(base), 48_000, rng), snr)
        sf.write(root / "fb48k" / f"c{k}_f1.wav", noisy, 48_000)
        fb.append(f"fb48k/c{k}_f1.wav,{4.5 - k},c{k}")
        if k >= 2:
            continue
        for t in ("a", "b"):
            sf.write(root / "nb8k" / f"{t}_c{k}.wav", noisy[::6], 8_000)
            nb.append(f"nb8k/{t}_c{k}.wav,{4.0 - k},c{k}")
    (root / "fb48k.csv").write_text("\n".join(fb) + "\n")
    (root / "nb8k_condition_level.csv").write_text("\n".join(nb) + "\n")


def test_report_and_scores(tmp_path: Path) -> None:
    pytest.importorskip("distillmos")
    _p835(tmp_path)
    out = tmp_path / "scores.csv"
    report = check_p835(tmp_path, out_csv=out)
    lines = report.splitlines()
    fb = next(line for line in lines if line.startswith("fb48k"))
    nb = next(line for line in lines if line.startswith("nb8k"))
    assert fb.split()[1] == "3" and nb.split()[1] == "2"  # 3 files; 4 nb files averaged to 2 conditions
    assert "wb16k" in report and "missing, skipped" in report
    assert "Distill-MOS" in report and "CPU-s per audio-s" in report
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 7
    assert all(1.0 <= float(r["label"]) <= 5.0 for r in rows)
    assert all(float(r["bandwidth_hz"]) <= 4_000 for r in rows if r["folder"] == "nb8k")
    with pytest.raises(ValueError, match="not found"):
        check_p835(tmp_path / "nope")
