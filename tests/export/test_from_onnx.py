"""Rebuilding the torch module of an exported file (the shipped default model has no checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from samos.export.from_onnx import PARITY_MOS, check_parity, model_from_onnx
from samos.export.onnx_export import ExportError
from samos.runtime.scorer import DEFAULT_MODEL


def test_the_shipped_model_is_rebuilt_exactly() -> None:
    model, meta = model_from_onnx(DEFAULT_MODEL)
    assert meta["samos.window_seconds"] == "4.0"
    assert model.spec_encoder is not None
    # the exporter folded the BatchNorms into the convs: identities here
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.spec_encoder.modules())
    assert check_parity(model, DEFAULT_MODEL) < PARITY_MOS
    # the check is tight enough to catch one weight off by a little: the mean head's last bias, +0.01
    with torch.no_grad():
        model.head.mu[-1].bias += 0.01
    with pytest.raises(ExportError, match="differs from the file"):
        check_parity(model, DEFAULT_MODEL)


def test_not_a_samos_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="not a loadable ONNX model"):
        model_from_onnx(bad)
