"""`samos eval` on a tiny rated set: metrics printed, predictions / metrics / plot written."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
from train_helpers import TINY_MODEL

from samos.cli import main
from samos.config import ModelConfig, from_dict
from samos.data.synthetic import SyntheticConfig, generate
from samos.model.checkpoint import save_checkpoint
from samos.model.samos_model import SAMOS

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    manifest = generate(SyntheticConfig(train_items=4, valid_items=12, seconds=0.6), root, "valid")
    torch.manual_seed(0)
    model = SAMOS(from_dict(ModelConfig, copy.deepcopy(TINY_MODEL)))
    ckpt = save_checkpoint(root / "m.pt", model, metadata={"torch_version": str(torch.__version__)})
    return manifest, ckpt


def test_eval_prints_metrics_and_writes_files(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, ckpt = setup
    out = tmp_path / "out"
    rc = main(
        ["eval", "--csv", str(manifest), "--checkpoint", str(ckpt), "--group", "condition", "--out", str(out)]
    )
    text = capsys.readouterr().out
    assert rc == 0
    assert "utterance-level (n=12): PCC" in text and "SRCC" in text and "MSE" in text and "RMSE" in text
    assert "condition-level by 'condition'" in text
    rows = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(rows) == 12 and set(rows[0]) == {"path", "mos", "pred", "pred_std", "group"}
    assert all(1.0 <= float(r["pred"]) <= 5.5 and float(r["pred_std"]) > 0 for r in rows)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["utterance"]["n"] == 12 and "condition" in metrics
    assert (out / "scatter.png").stat().st_size > 1000


def test_eval_skips_bad_files_and_reports_bad_group(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, ckpt = setup
    bad = tmp_path / "bad.csv"
    lines = manifest.read_text().splitlines()
    bad.write_text(
        "\n".join([lines[0], *(lines[1:4])]).replace("valid/", str(manifest.parent / "valid") + "/")
        + "\nnowhere.wav,3.0,,,\n"
    )
    rc = main(["eval", "--csv", str(bad), "--checkpoint", str(ckpt)])
    captured = capsys.readouterr()
    assert rc == 0 and "utterance-level (n=3)" in captured.out
    assert "missing_file: 1" in captured.err and "nowhere.wav" in captured.err
    rc = main(["eval", "--csv", str(manifest), "--checkpoint", str(ckpt), "--group", "speaker"])
    assert rc == 2 and "no such column" in capsys.readouterr().err  # 2: the command, not the run
    rc = main(["eval", "--csv", str(manifest), "--checkpoint", str(tmp_path / "none.pt")])
    assert rc == 2 and "no such checkpoint" in capsys.readouterr().err
