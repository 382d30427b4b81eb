"""The documented first training run (docs/TRAINING.md): `samos train --config configs/smoke.yaml`
learns a model that ranks its validation split, keeps a trained epoch, and logs plain lines when piped.

About a minute of CPU on two idle cores (it is the quick start a newcomer runs, so it runs in CI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from samos.data.manifest import read_manifests, validate
from samos.model.checkpoint import read_checkpoint
from samos.train.evaluate import checkpoint_predictor, predict_manifest
from samos.train.metrics import agreement

REPO = Path(__file__).resolve().parents[2]
PCC_FLOOR = 0.8
"""The run reaches 0.90 on its validation split; the untrained model 0.42."""


def test_smoke_config_learns_and_keeps_a_trained_epoch(tmp_path: Path) -> None:
    out = tmp_path / "smoke"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "samos.cli",
            "train",
            "--config",
            str(REPO / "configs" / "smoke.yaml"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "\r" not in r.stdout + r.stderr, "piped output: plain progress lines, no carriage returns"
    untrained = json.loads((out / "pretrain" / "metrics.json").read_text())[0]["val_pcc"]
    steps = {s["name"]: s for s in read_checkpoint(out / "final.pt")["metadata"]["steps"]}
    assert steps["pretrain"]["best_epoch"] > 0, "a fresh model's step never keeps the untrained epoch 0"
    best = steps["finetune"]["best_val_pcc"]
    assert best >= PCC_FLOOR and best >= untrained + 0.3, (untrained, best)

    # the checkpoint the quick start exports and scores ranks the validation clips (scored whole)
    manifest = validate(read_manifests([out / "synthetic" / "valid.csv"], None, "generic"))
    predict, min_samples = checkpoint_predictor(out / "final.pt")
    p = predict_manifest(manifest, predict, min_samples, progress=False)
    pcc = agreement(p.pred, p.labels).pcc
    assert pcc >= PCC_FLOOR, pcc
    assert float(p.pred.std()) > 0.3, "not a constant model"
