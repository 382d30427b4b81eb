"""`samos export` end to end on a tiny spectrogram-only checkpoint (the fast export path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import tiny_model

from samos.cli import main
from samos.model import save_checkpoint
from samos.runtime import Calibration, Scorer

P835 = Path("/work/shared/data/p835/fb48k")


@pytest.fixture(scope="module")
def checkpoint(module_tmp: Path) -> Path:
    model = tiny_model(ssl=False)
    return save_checkpoint(module_tmp / "tiny.pt", model, metadata={"train": {"crop_seconds": 4.0}})


def test_export_verify_fp16(checkpoint: Path, module_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = module_tmp / "spec.onnx"
    args = [
        "export",
        "--checkpoint",
        str(checkpoint),
        "--out",
        str(out),
        "--fp16",
        "--verify",
        "--verify-seconds",
        "0.5,3,10",
        "--verify-batches",
        "1,2",
    ]
    if P835.is_dir():  # the real P.835 speech where it is available, else the bundled demo recording
        args += ["--verify-audio", *[str(p) for p in sorted(P835.glob("c*_f1.wav"))[:3]]]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.count("PASS") == 2, text
    assert "tolerance 0.001" in text and "tolerance 0.02" in text
    half = module_tmp / "spec.fp16.onnx"
    assert out.is_file() and half.is_file()
    info = Scorer(out, providers=("cpu",), threads=1).info
    assert info.inputs == ("wave48",)
    assert info.window_seconds == 4.0  # the checkpoint's training crop
    assert info.calibration == Calibration()
    assert Scorer(half, providers=("cpu",), threads=1).info.precision == "fp16"


def test_export_calibration_and_window_flags(checkpoint: Path, module_tmp: Path) -> None:
    out = module_tmp / "cal.onnx"
    rc = main(
        [
            "export",
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(out),
            "--calibration",
            "0.9,0.3",
            "--window-seconds",
            "6",
            "--min-seconds",
            "1.25",
        ]
    )
    assert rc == 0
    info = Scorer(out, providers=("cpu",), threads=1).info
    assert info.calibration == Calibration(0.9, 0.3)
    assert info.window_seconds == 6.0 and info.min_seconds == 1.25


def test_bad_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "samos export:" in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_bad_calibration_flag(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(tmp_path / "x.onnx"),
                "--calibration",
                "1",
            ]
        )
        == 2
    )
    assert "SCALE,OFFSET" in capsys.readouterr().err
