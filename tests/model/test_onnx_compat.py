"""The model exports with torch.onnx.export(dynamo=True) with dynamic batch and time, and onnxruntime
agrees with torch at lengths other than the example's (including inputs shorter than the SSL head's
receptive field). Slow (the dynamo exporter takes a minute on 2 cores): `pytest -m slow`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import tiny_arch

from samos.config import ModelConfig, SpecConfig, SSLConfig, SSLHeadConfig
from samos.model import SAMOS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_dynamo_export_dynamic_batch_and_time(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    cfg = ModelConfig(
        ssl=SSLConfig(
            family="wav2vec2", arch=tiny_arch(3, layer_norm_first=True), layer=2, normalize_waveform=True
        ),
        ssl_head=SSLHeadConfig(channels=(16, 8, 8)),
        spec=SpecConfig(channels=(4, 4, 8, 8)),
    )
    model = SAMOS(cfg).eval()
    batch = torch.export.Dim("batch", min=1, max=32)
    time = torch.export.Dim("time", min=model.min_samples, max=16_000 * 120)
    example = (torch.randn(2, 16_000) * 0.1, torch.randn(2, 48_000) * 0.1)
    program = torch.onnx.export(
        model,
        example,
        dynamo=True,
        input_names=["wave16", "wave48"],
        output_names=["mos", "mos_var"],
        dynamic_shapes={"wave16": {0: batch, 1: time}, "wave48": {0: batch, 1: 3 * time}},
    )
    assert program is not None
    path = tmp_path / "model.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ops = {node.op_type for node in program.model_proto.graph.node}
    assert "STFT" not in ops and "DFT" not in ops
    for b, n in ((1, model.min_samples), (3, 3_200), (2, 16_000 * 3 + 77)):
        w16 = torch.randn(b, n) * 0.2
        w48 = torch.randn(b, 3 * n) * 0.2
        with torch.no_grad():
            mean, var = model(w16, w48)
        out = session.run(None, {"wave16": w16.numpy(), "wave48": w48.numpy()})
        np.testing.assert_allclose(out[0], mean.numpy(), atol=1e-4)
        np.testing.assert_allclose(out[1], var.numpy(), atol=1e-4)
