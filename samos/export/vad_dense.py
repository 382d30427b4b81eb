"""The speech detector's graph, rewritten as dense matrix products (same weights, same outputs).

Silero's sequence model (``samos/models/vad/silero_vad_16k_sequence.onnx``, vendored unchanged) runs
each 32 ms frame (``[576]`` samples: 64 of context + 512) through a DFT written as a strided Conv1d,
four small Conv1d layers over the frame's 4 STFT columns, an LSTM over the frames, and a 1x1 conv.
On onnxruntime's CPU provider those convolutions over a time axis only 4, 2 or 1 long cost more in
layout and im2col than in arithmetic (about 58 us per frame here, 80 % of it in the convolutions).

:func:`build` writes the same network as plain matrix products over whole frames:

* the DFT: the frame (reflect-padded by 64 samples, as the source pads) cut into 128-sample blocks,
  neighbouring blocks side by side (``[frames, 4, 256]``), times the source's own DFT basis
  (``[256, 258]``); the source's first STFT column, which it drops, is never computed;
* each Conv1d (kernel 3, padding 1, stride 1 or 2) over the 4-, 2- or 1-column axis as one matrix on
  the flattened ``[columns x channels]`` frame (``[516, 512]``, ``[512, 128]``, ``[128, 64]``,
  ``[64, 128]``), the kernel taps placed where the convolution reads, zeros where it reads padding;
* the LSTM node as it is (the same weights and state), the 1x1 output conv as a matrix.

Inputs and outputs are the source's (``input [frames, 576]``, ``h``, ``c`` -> ``speech_probs
[frames]``, ``hn``, ``cn``). Only the order of the floating-point sums changes: probabilities agree
within 1e-5 (tests/export/test_vad_dense.py, real speech) and the graph runs about 2.4x faster on one
thread (``samos bench vad --cost-only``). The runtime loads the derived file
(``samos/models/vad/silero_vad_16k_dense.onnx``), made by::

    python -m samos.export.vad_dense            # rewrites the shipped file from the vendored source

Build-time only (needs ``onnx``); the monitor just loads the file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper as oh
from onnx import numpy_helper as nh

from samos.runtime.modelinfo import file_sha256
from samos.runtime.vad import CONTEXT, FRAME, VAD_DENSE_MODEL, VAD_SOURCE_MODEL, VAD_SOURCE_SHA256

BLOCK = 128
"""The source DFT's hop (samples)."""
N_FFT = 256
BINS = N_FFT // 2 + 1
COLUMNS = 4
"""STFT columns per frame that the source keeps (of the 5 it computes; it drops the first)."""
PAD = COLUMNS * BLOCK + BLOCK - (CONTEXT + FRAME)
"""Reflect padding at the frame's end (64 samples): column 4 reads past the frame's last sample."""
HIDDEN = 128
OPSET = 16


class VadGraphError(ValueError):
    """The source file is not the Silero sequence graph this rewrite was written for."""


def conv_matrix(
    weight: np.ndarray, bias: np.ndarray, columns: int, stride: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Conv1d weights ``[out, in, 3]`` (padding 1) -> ``(M [columns * in, out_columns * out], bias
    [out_columns * out], out_columns)`` acting on a time-major flattened ``[columns, in]`` input."""
    out, inp, k = weight.shape
    if k != 3:
        raise VadGraphError(f"expected kernel 3 convolutions, got kernel {k}")
    out_columns = (columns + 2 - k) // stride + 1
    m = np.zeros((columns * inp, out_columns * out), np.float32)
    for t in range(out_columns):
        for j in range(k):
            s = t * stride + j - 1  # the input column this tap reads (padding outside 0..columns-1)
            if 0 <= s < columns:
                m[s * inp : (s + 1) * inp, t * out : (t + 1) * out] = weight[:, :, j].T
    return m, np.tile(bias, out_columns).astype(np.float32), out_columns


def _weights(src: onnx.ModelProto) -> dict[str, np.ndarray]:
    w = {t.name: nh.to_array(t) for t in src.graph.initializer}
    convs = [n for n in src.graph.node if n.op_type == "Conv"]
    lstm = [n for n in src.graph.node if n.op_type == "LSTM"]
    names = [n.name for n in convs]
    expected = [
        "/stft/Conv",
        "/encoder.0/Conv",
        "/encoder.1/Conv",
        "/encoder.2/Conv",
        "/encoder.3/Conv",
        "/output/Conv",
    ]
    if names != expected or len(lstm) != 1 or [i.name for i in src.graph.input] != ["input", "h", "c"]:
        raise VadGraphError(f"not the Silero sequence graph (convolutions {names}, {len(lstm)} LSTM)")
    strides = [oh.get_attribute_value(a) for n in convs[1:5] for a in n.attribute if a.name == "strides"]
    if strides != [[1], [2], [2], [1]] or w["stft.forward_basis_buffer"].shape != (2 * BINS, 1, N_FFT):
        raise VadGraphError(
            f"unexpected strides {strides} or DFT basis {w['stft.forward_basis_buffer'].shape}"
        )
    out = {"basis": np.ascontiguousarray(w["stft.forward_basis_buffer"][:, 0, :].T)}  # [256, 258]
    for i in range(4):
        out[f"enc{i}.w"], out[f"enc{i}.b"] = w[f"encoder.{i}.weight"], w[f"encoder.{i}.bias"]
    out["lstm.W"], out["lstm.R"], out["lstm.B"] = (w[x] for x in lstm[0].input[1:4])
    out["out.w"] = np.ascontiguousarray(w["output.weight"][:, :, 0].T)  # [128, 1]
    out["out.b"] = w["output.bias"]
    return out


def build(source: str | Path = VAD_SOURCE_MODEL) -> onnx.ModelProto:
    """The dense graph of the Silero sequence model at ``source`` (see the module docstring)."""
    if (
        Path(source).resolve() == VAD_SOURCE_MODEL.resolve()
        and file_sha256(VAD_SOURCE_MODEL) != VAD_SOURCE_SHA256
    ):
        raise VadGraphError(f"{source}: sha256 does not match the vendored Silero VAD ({VAD_SOURCE_SHA256})")
    src = onnx.load(str(source))
    w = _weights(src)
    inits: dict[str, np.ndarray] = {
        "pads": np.array([0, 0, 0, PAD], np.int64),
        "blocks_shape": np.array([-1, COLUMNS + 1, BLOCK], np.int64),
        "zero": np.array([0], np.int64),
        "one": np.array([1], np.int64),
        "last": np.array([COLUMNS], np.int64),
        "end": np.array([COLUMNS + 1], np.int64),
        "basis": w["basis"],
        "re_im_shape": np.array([-1, 2, BINS], np.int64),
        "flat_shape": np.array([-1, COLUMNS * BINS], np.int64),
        "seq_shape": np.array([-1, 1, HIDDEN], np.int64),
        "squeeze_axes": np.array([1, 2], np.int64),
        "lstm.W": w["lstm.W"],
        "lstm.R": w["lstm.R"],
        "lstm.B": w["lstm.B"],
        "out.w": w["out.w"],
        "out.b": w["out.b"],
        "probs_shape": np.array([-1], np.int64),
    }
    node = oh.make_node
    nodes = [
        node("Pad", ["input", "pads"], ["padded"], mode="reflect"),  # [n, 640]
        node("Reshape", ["padded", "blocks_shape"], ["blocks"]),  # [n, 5, 128]
        node("Slice", ["blocks", "zero", "last", "one"], ["left"]),  # blocks 0..3
        node("Slice", ["blocks", "one", "end", "one"], ["right"]),  # blocks 1..4
        node("Concat", ["left", "right"], ["columns"], axis=2),  # [n, 4, 256]
        node("MatMul", ["columns", "basis"], ["dft"]),  # [n, 4, 258]: real 0..128, imag 129..257
        node("Mul", ["dft", "dft"], ["dft2"]),
        node("Reshape", ["dft2", "re_im_shape"], ["re_im"]),  # [n * 4, 2, 129]
        node("ReduceSum", ["re_im", "one"], ["power"], keepdims=0),
        node("Sqrt", ["power"], ["magnitude"]),
        node("Reshape", ["magnitude", "flat_shape"], ["x0"]),  # [n, 4 * 129], column-major
    ]
    columns, x = COLUMNS, "x0"
    for i, stride in enumerate((1, 2, 2, 1)):
        m, b, columns = conv_matrix(w[f"enc{i}.w"], w[f"enc{i}.b"], columns, stride)
        inits[f"enc{i}.m"], inits[f"enc{i}.bias"] = m, b
        nodes += [
            node("MatMul", [x, f"enc{i}.m"], [f"enc{i}.mm"]),
            node("Add", [f"enc{i}.mm", f"enc{i}.bias"], [f"enc{i}.pre"]),
            node("Relu", [f"enc{i}.pre"], [f"x{i + 1}"]),
        ]
        x = f"x{i + 1}"
    if columns != 1:
        raise VadGraphError(f"the encoder ends with {columns} columns, not 1")
    nodes += [
        node("Reshape", [x, "seq_shape"], ["sequence"]),  # [n, 1, 128]: the frames are the sequence
        node(
            "LSTM",
            ["sequence", "lstm.W", "lstm.R", "lstm.B", "", "h", "c"],
            ["lstm_y", "hn", "cn"],
            hidden_size=HIDDEN,
        ),
        node("Squeeze", ["lstm_y", "squeeze_axes"], ["lstm_out"]),  # [n, 128]
        node("Relu", ["lstm_out"], ["hidden"]),
        node("MatMul", ["hidden", "out.w"], ["logit_mm"]),
        node("Add", ["logit_mm", "out.b"], ["logit"]),
        node("Sigmoid", ["logit"], ["prob"]),
        node("Reshape", ["prob", "probs_shape"], ["speech_probs"]),
    ]
    state = [1, 1, HIDDEN]
    graph = oh.make_graph(
        nodes,
        "silero_vad_16k_dense",
        [
            oh.make_tensor_value_info("input", TensorProto.FLOAT, ["frames", CONTEXT + FRAME]),
            oh.make_tensor_value_info("h", TensorProto.FLOAT, state),
            oh.make_tensor_value_info("c", TensorProto.FLOAT, state),
        ],
        [
            oh.make_tensor_value_info("speech_probs", TensorProto.FLOAT, ["frames"]),
            oh.make_tensor_value_info("hn", TensorProto.FLOAT, state),
            oh.make_tensor_value_info("cn", TensorProto.FLOAT, state),
        ],
        [nh.from_array(v, k) for k, v in inits.items()],
    )
    model = oh.make_model(
        graph, opset_imports=[oh.make_opsetid("", OPSET)], producer_name="samos.export.vad_dense"
    )
    model.ir_version = src.ir_version
    model.doc_string = "Silero VAD 6.2.3 (MIT, silero_vad_16k_sequence.onnx) as dense matrix products"
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samos.export.vad_dense", description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=VAD_SOURCE_MODEL, help="the vendored Silero sequence graph")
    p.add_argument("--out", type=Path, default=VAD_DENSE_MODEL, help="where to write the dense graph")
    args = p.parse_args(argv)
    try:
        model = build(args.source)
    except (OSError, VadGraphError, onnx.checker.ValidationError) as e:
        print(f"vad_dense: {e}", file=sys.stderr)
        return 2
    onnx.save(model, str(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
