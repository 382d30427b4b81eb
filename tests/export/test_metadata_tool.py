"""Rewriting a model file's samos.* metadata in place of a re-export (calibration, minimum length)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from samos.export.metadata import main, rewrite_metadata, write_calibration
from samos.runtime import Calibration, ModelFileError, Scorer
from samos.runtime.modelinfo import KEY_MIN_SECONDS, KEY_WINDOW_SECONDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx, tiny_reference  # noqa: E402


def test_calibration_and_min_seconds_written_without_touching_the_graph(tmp_path: Path) -> None:
    src = make_tiny_onnx(tmp_path / "m.onnx", min_seconds=0.25, window_seconds=2.0)
    cal = Calibration(poly=(-1.0, 1.5, 0.0, 0.0), domain=(2.0, 4.0), method="test")
    dst = write_calibration(src, tmp_path / "cal.onnx", cal)
    assert main([str(dst), "--out", str(dst), "--min-seconds", "1.0"]) == 0
    before = Scorer(src, providers=("cpu",), threads=1)
    after = Scorer(dst, providers=("cpu",), threads=1)
    assert after.info.calibration == cal and after.info.min_seconds == 1.0
    assert after.info.weights_sha256 == before.info.weights_sha256
    rng = np.random.default_rng(0)
    w16 = rng.uniform(-0.1, 0.1, (2, 16_000)).astype(np.float32)
    w48 = rng.uniform(-0.1, 0.1, (2, 48_000)).astype(np.float32)
    raw, _ = tiny_reference(w16, w48)
    res = after.score(w16, w48)
    np.testing.assert_allclose(res.raw_mos, raw, atol=1e-4)
    np.testing.assert_allclose(res.mos, cal.map_mos(raw), atol=1e-4)
    with pytest.raises(ValueError, match="too short"):
        after.score(w16[:, :8000], w48[:, :24000])  # 0.5 s: scored by the old file, refused by the new
    before.score(w16[:, :8000], w48[:, :24000])


def test_invalid_updates_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_tiny_onnx(tmp_path / "m.onnx", window_seconds=2.0)
    with pytest.raises(ModelFileError, match="window_seconds"):
        rewrite_metadata(src, tmp_path / "x.onnx", {KEY_MIN_SECONDS: "3.0", KEY_WINDOW_SECONDS: "2.0"})
    assert not (tmp_path / "x.onnx").exists()
    assert (
        main(
            [
                str(src),
                "--out",
                str(tmp_path / "y.onnx"),
                "--calibration",
                '{"poly": [0, -1], "domain": [1, 5]}',
            ]
        )
        == 2
    )
    assert "non-decreasing" in capsys.readouterr().err
    assert main([str(src), "--out", str(tmp_path / "y.onnx")]) == 2
    assert (
        main([str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "y.onnx"), "--min-seconds", "1"]) == 1
    )
