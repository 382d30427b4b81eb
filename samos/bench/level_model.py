"""A tiny samos ONNX model whose MOS comes from loudness: an instrument for load tests, not a quality model.

``samos bench soak --model level`` uses it so that what is measured is the monitor's pipeline
(WebRTC, Opus, resampling, windowing, fan-out) rather than a neural network; the monitor tests use it
because every sample of both inputs changes its output, so windowing, alignment or batching mistakes
show. It follows the full model-file contract (inputs, outputs, metadata), so the real runtime loads it.
"""

from __future__ import annotations

from pathlib import Path

from samos.runtime.modelinfo import Calibration, build_metadata


def make_level_model(path: Path, window_seconds: float = 4.0, min_seconds: float = 0.5) -> Path:
    """Write a contract-conforming samos ONNX model whose MOS falls with loudness to ``path``.

    mos = 1 + 4 * sigmoid(40 * (0.05 - mean|wave48|)); mos_std = 0.1 + mean|wave16|; both [batch].
    Every sample of both inputs matters, so windowing, alignment or batching mistakes change the score.
    """
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError as e:
        raise RuntimeError("the level model needs the onnx package (pip install 'samos[bench]')") from e
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    consts = [
        helper.make_tensor(n, TensorProto.FLOAT, [], [v])
        for n, v in (("c005", 0.05), ("c40", 40.0), ("c4", 4.0), ("c1", 1.0), ("c01", 0.1))
    ]
    nodes = [
        helper.make_node("Abs", ["wave48"], ["a48"]),
        helper.make_node("ReduceMean", ["a48", "axes"], ["m48"], keepdims=0),
        helper.make_node("Sub", ["c005", "m48"], ["d"]),
        helper.make_node("Mul", ["d", "c40"], ["d40"]),
        helper.make_node("Sigmoid", ["d40"], ["s"]),
        helper.make_node("Mul", ["s", "c4"], ["s4"]),
        helper.make_node("Add", ["s4", "c1"], ["mos"]),
        helper.make_node("Abs", ["wave16"], ["a16"]),
        helper.make_node("ReduceMean", ["a16", "axes"], ["m16"], keepdims=0),
        helper.make_node("Add", ["m16", "c01"], ["mos_std"]),
    ]
    graph = helper.make_graph(
        nodes,
        "level_mos",
        [
            helper.make_tensor_value_info("wave16", TensorProto.FLOAT, ["batch", "samples16"]),
            helper.make_tensor_value_info("wave48", TensorProto.FLOAT, ["batch", "samples48"]),
        ],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch"]) for n in ("mos", "mos_std")],
        initializer=[axes, *consts],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    meta = build_metadata(
        version="0.1.0",
        config={"test": "level_mos"},
        ssl_rate=16_000,
        spec_rate=48_000,
        n_fft=320,
        hop=160,
        weights_sha256="0" * 64,
        calibration=Calibration(),
        min_seconds=min_seconds,
        window_seconds=window_seconds,
        precision="fp32",
    )
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
