"""Hand-built tiny samos ONNX graphs (onnx.helper), so runtime tests need no torch and no trained model.

Imported by tests as ``from tiny_onnx import ...`` (pytest puts this folder on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from samos.runtime.modelinfo import Calibration, build_metadata

ModelFactory = Callable[..., Path]
IDENTITY = Calibration()


def make_tiny_onnx(
    path: Path,
    *,
    inputs: tuple[str, ...] = ("wave16", "wave48"),
    calibration: Calibration = IDENTITY,
    meta_overrides: dict[str, str | None] | None = None,
    min_seconds: float = 0.25,
    window_seconds: float = 2.0,
    output_names: tuple[str, str] = ("mos", "mos_std"),
) -> Path:
    """mos = 3 + 20 * (mean(wave16^2) - mean|wave48|); mos_std = 0.5 + mean|wave48| (absent inputs: 0).

    Both outputs are [batch]; the values depend on every sample, so batching or windowing mistakes show.
    """
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    nodes = []
    terms16, terms48 = [], []
    if "wave16" in inputs:
        nodes += [
            helper.make_node("Mul", ["wave16", "wave16"], ["sq16"]),
            helper.make_node("ReduceMean", ["sq16", "axes"], ["e16"], keepdims=0),
        ]
        terms16.append("e16")
    if "wave48" in inputs:
        nodes += [
            helper.make_node("Abs", ["wave48"], ["abs48"]),
            helper.make_node("ReduceMean", ["abs48", "axes"], ["e48"], keepdims=0),
        ]
        terms48.append("e48")
    consts = [
        helper.make_tensor("three", TensorProto.FLOAT, [], [3.0]),
        helper.make_tensor("twenty", TensorProto.FLOAT, [], [20.0]),
        helper.make_tensor("half", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    a = terms16[0] if terms16 else "zero"
    b = terms48[0] if terms48 else "zero"
    ref = "e16" if terms16 else "e48"
    nodes += [
        helper.make_node("Sub", [a, b], ["d"]),
        helper.make_node("Mul", ["d", "twenty"], ["d20"]),
        helper.make_node("Add", ["d20", "three"], ["mos_raw"]),
        # broadcast to [batch] even when only scalars are involved
        helper.make_node("Mul", [ref, "zero"], ["zeros_b"]),
        helper.make_node("Add", ["mos_raw", "zeros_b"], [output_names[0]]),
        helper.make_node("Add", [b, "half"], ["std_raw"]),
        helper.make_node("Add", ["std_raw", "zeros_b"], [output_names[1]]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_samos",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", f"samples_{n}"]) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch"]) for n in output_names],
        initializer=[axes, *consts],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    meta = build_metadata(
        version="0.1.0",
        config={"tiny": True},
        ssl_rate=16_000,
        spec_rate=48_000,
        n_fft=320,
        hop=160,
        weights_sha256="0" * 64,
        calibration=calibration,
        min_seconds=min_seconds,
        window_seconds=window_seconds,
        precision="fp32",
    )
    for k, v in (meta_overrides or {}).items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def tiny_reference(w16: np.ndarray | None, w48: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """numpy twin of make_tiny_onnx's graph (uncalibrated): (mos [B], mos_std [B]) as float64."""
    batch = len(w16) if w16 is not None else len(w48)  # type: ignore[arg-type]
    e16 = np.mean(np.square(w16, dtype=np.float64), axis=1) if w16 is not None else np.zeros(batch)
    e48 = np.mean(np.abs(w48.astype(np.float64)), axis=1) if w48 is not None else np.zeros(batch)
    return 3 + 20 * (e16 - e48), 0.5 + e48
