"""`samos train` / `python -m samos.train`: argument handling and clear errors (no training here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from samos.cli import main


def test_bad_config_is_exit_2_with_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("pretrain:\n  epochs: 0\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "epochs" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err


def test_data_errors_are_exit_1_not_tracebacks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "model: {ssl: {family: none}}\ndevice: cpu\n"
        f"pretrain:\n  data: {{train: [{tmp_path / 'missing.csv'}], valid: [{tmp_path / 'missing.csv'}]}}\n"
    )
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 1
    assert "no such manifest file" in capsys.readouterr().err


def test_module_entry_point_help() -> None:
    cmd = [sys.executable, "-m", "samos.train", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--config" in out.stdout and "--resume" in out.stdout
