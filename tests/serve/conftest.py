"""Fixtures for the serving tests: a tiny hand-built samos ONNX model (tests/runtime/tiny_onnx.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx  # noqa: E402

from samos.runtime import Calibration  # noqa: E402


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """mos = 0.9 * (3 + 20 * (mean(wave16^2) - mean|wave48|)) + 0.2: every sample counts."""
    return make_tiny_onnx(tmp_path_factory.mktemp("serve") / "tiny.onnx", calibration=Calibration(0.9, 0.2))
