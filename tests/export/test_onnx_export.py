"""Export of a tiny random SAMOS (both branches): graph contract, metadata, parity with torch, fp16."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from export_helpers import tiny_model
from onnx import TensorProto, helper

from samos.config import to_dict
from samos.export.onnx_export import (
    FORBIDDEN_OPS,
    ExportError,
    ExportSettings,
    check_graph,
    export_onnx,
    graph_ops,
    save_fp16,
    weights_sha256,
)
from samos.export.verify import verify_onnx
from samos.model import SAMOS
from samos.runtime import Calibration, Scorer


@pytest.fixture(scope="module")
def exported(module_tmp: Path) -> tuple[SAMOS, Path, Path]:
    torch.set_num_threads(1)
    model = tiny_model()
    path = module_tmp / "tiny.onnx"
    proto = export_onnx(model, path, ExportSettings(window_seconds=3.0, calibration=Calibration(1.1, -0.2)))
    half = module_tmp / "tiny.fp16.onnx"
    save_fp16(proto, half)
    return model, path, half


def test_graph_contract(exported: tuple[SAMOS, Path, Path]) -> None:
    _, path, _ = exported
    m = onnx.load(str(path))
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 18
    ins = {i.name: i.type.tensor_type for i in m.graph.input}
    assert list(ins) == ["wave16", "wave48"]
    for t in ins.values():
        assert t.elem_type == TensorProto.FLOAT
        assert [d.dim_param or d.dim_value for d in t.shape.dim][0] == "batch"
        assert all(d.dim_param for d in t.shape.dim), "batch and time must be dynamic"
    assert [o.name for o in m.graph.output] == ["mos", "mos_std"]
    ops = graph_ops(path)
    assert not ops & FORBIDDEN_OPS, f"CPU-only spectral ops in the graph: {ops & FORBIDDEN_OPS}"
    assert "Conv" in ops


def test_parity_with_torch_lengths_and_batches(exported: tuple[SAMOS, Path, Path]) -> None:
    model, path, _ = exported
    report = verify_onnx(model, path, seconds=(0.5, 3.0, 10.0), batches=(1, 3))
    assert report.ok, report.table()
    assert {(r.source, r.seconds, r.batch) for r in report.rows} == {
        (s, sec, b) for s in ("random", "speech") for sec in (0.5, 3.0, 10.0) for b in (1, 3)
    }
    assert report.worst <= 1e-3


def test_metadata_round_trip(exported: tuple[SAMOS, Path, Path]) -> None:
    model, path, _ = exported
    info = Scorer(path, providers=("cpu",), threads=1).info
    assert info.format == "1"
    assert info.config == to_dict(model.cfg)
    assert info.weights_sha256 == weights_sha256(model.state_dict())
    assert info.calibration == Calibration(1.1, -0.2)
    assert info.window_seconds == 3.0
    assert info.min_seconds >= model.min_seconds
    assert (info.ssl_rate, info.spec_rate, info.n_fft, info.hop) == (16_000, 48_000, 320, 160)
    assert info.precision == "fp32"


def test_scorer_applies_calibration_to_graph_output(exported: tuple[SAMOS, Path, Path]) -> None:
    model, path, _ = exported
    rng = np.random.default_rng(1)
    w16 = (0.1 * rng.standard_normal((2, 16_000))).astype(np.float32)
    w48 = (0.1 * rng.standard_normal((2, 48_000))).astype(np.float32)
    with torch.no_grad():
        mean, var = model(torch.from_numpy(w16), torch.from_numpy(w48))
    res = Scorer(path, providers=("cpu",), threads=1).score(w16, w48)
    np.testing.assert_allclose(res.mos, 1.1 * mean.numpy() - 0.2, atol=1e-3)
    np.testing.assert_allclose(res.std, 1.1 * var.sqrt().numpy(), atol=1e-3)


def test_fp16_copy(exported: tuple[SAMOS, Path, Path]) -> None:
    model, path, half = exported
    m = onnx.load(str(half))
    assert {i.type.tensor_type.elem_type for i in m.graph.input} == {TensorProto.FLOAT}
    assert {o.type.tensor_type.elem_type for o in m.graph.output} == {TensorProto.FLOAT}
    assert any(t.data_type == TensorProto.FLOAT16 for t in m.graph.initializer)
    info = Scorer(half, providers=("cpu",), threads=1).info
    assert info.precision == "fp16"
    assert info.weights_sha256 == weights_sha256(model.state_dict())
    report = verify_onnx(model, half, precision="fp16", seconds=(0.5, 3.0), batches=(1, 2))
    assert report.ok, report.table()
    assert report.tolerance == 0.02


def test_verify_fails_loudly_on_a_mismatch(exported: tuple[SAMOS, Path, Path]) -> None:
    model, path, _ = exported
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.head.parameters():
            p.add_(0.05)
    report = verify_onnx(other, path, seconds=(1.0,), batches=(1,))
    assert not report.ok
    assert "FAIL" in report.table()


def test_check_graph_rejects_stft() -> None:
    node = helper.make_node("STFT", ["wave48", "step"], ["spec"])
    graph = helper.make_graph(
        [
            node,
            helper.make_node("Identity", ["spec"], ["mos"]),
            helper.make_node("Identity", ["spec"], ["mos_std"]),
        ],
        "bad",
        [helper.make_tensor_value_info("wave48", TensorProto.FLOAT, ["b", "t"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("mos", "mos_std")],
        initializer=[helper.make_tensor("step", TensorProto.INT64, [], [160])],
    )
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(ExportError, match="STFT"):
        check_graph(bad)


def test_verify_reports_an_unloadable_file(exported: tuple[SAMOS, Path, Path], tmp_path: Path) -> None:
    model, path, _ = exported
    bad = tmp_path / "cut.onnx"
    bad.write_bytes(path.read_bytes()[:1000])
    report = verify_onnx(model, bad, seconds=(1.0,), batches=(1,))
    assert not report.ok and report.error and "cannot load" in report.error
    assert "error:" in report.table() and "FAIL" in report.table()
