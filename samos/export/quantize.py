"""Static int8 incremental pairs: ``M.frames.onnx`` -> ``M.frames.int8.onnx`` (and, opt-in,
``M.head.onnx`` -> ``M.head.int8.onnx``) for CPU streaming: about 1.7x cheaper for the default model.

The frames graph of an incremental pair is almost all convolution (the Distill-MOS CNN is 90% of the
default model's FLOPs); the head's cost is its transformer's weight matrices. Those are quantised
statically (QDQ, int8 weights per output channel, uint8 activations) with onnxruntime's quantiser;
the DFT front ends (fixed bases), magnitudes, logs, attention's products, norms, softmax and the
head's conv and MLP layers stay float32. Activation ranges are calibrated on real speech at
the stream gain the runtime uses (``1 / peak`` of the first window), with the 99.99th percentile of
each activation: min/max ranges are stretched by rare peaks and moved MOS several times more on the
P.835 and vmc24t3 clips (samos/models/MODEL_CARD.md, "Int8").

Dynamic int8 is not offered: it was 2.5-3x slower on CPUs without VNNI (../shared/docs/NOTES.md).
The runtime picks the int8 graphs on the CPU provider when they exist (``Scorer(int8=True)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import SPEC_RATE, SSL_RATE, load_audio, resample
from samos.runtime.incremental import PEAK_EPS, int8_frames_path, int8_head_path, pair_paths
from samos.runtime.modelinfo import KEY_INCREMENTAL, KEY_PRECISION, ModelFileError

CALIBRATION_SECONDS = 4.0
"""Audio per calibration clip (its first seconds), as one monitor window."""
PERCENTILE = 99.99
KEY_INT8 = "samos.int8"


class QuantizeError(ValueError):
    """The frames graph or the calibration clips cannot be used."""


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_pair` wrote (``head`` None: the head has nothing worth int8), how many
    nodes of each graph it quantised and on how many ``clips``."""

    frames: Path
    head: Path | None
    frame_nodes: int
    head_nodes: int
    clips: int


def calibration_feeds(
    paths: Sequence[Path], inputs: Sequence[str], seconds: float = CALIBRATION_SECONDS
) -> list[dict[str, np.ndarray]]:
    """Frames-graph feeds for each clip: its first ``seconds`` (on the 10 ms grid), ``wave16`` at the
    stream gain ``1 / peak``, ``wave48`` as it is. Unreadable or too-short clips raise QuantizeError."""
    feeds = []
    for p in paths:
        try:
            audio, sr = load_audio(p)
        except ValueError as e:  # AudioError: unreadable, empty
            raise QuantizeError(f"calibration clip {p}: {e}") from None
        mono = audio if audio.ndim == 1 else audio.mean(axis=1)
        w16 = resample(mono, sr, SSL_RATE).astype(np.float32)
        n = min(len(w16), int(seconds * SSL_RATE))
        n -= n % 160
        if n < SSL_RATE:
            raise QuantizeError(f"calibration clip {p}: {len(w16) / SSL_RATE:.2f} s, shorter than 1 s")
        w48 = resample(mono, sr, SPEC_RATE).astype(np.float32)[: 3 * n]
        gain = 1.0 / (float(np.abs(w16[:n]).max()) + PEAK_EPS)
        feed = {"wave16": (gain * w16[:n])[None], "wave48": w48[None]}
        feeds.append({k: v for k, v in feed.items() if k in inputs})
    return feeds


def quantised_nodes(model_path: Path, head: bool = False) -> list[str]:
    """Nodes worth int8. In a frames graph: Conv with learned weights (a DFT basis is not learned) and
    MatMul / Gemm by a weight matrix (the per-frame projection), except a conv that sees the signal on
    a linear scale (the encoder CNN's first conv, over the raw STFT): 8 bits of a linear-scale input
    are a noise floor about 48 dB under its peak, which the model hears as noise (on vmc24t3 the
    default of 2026-12-05 lost 0.035 PCC with it in int8, 0.007 without; docs/MONITOR.md). In a
    ``head`` graph: only MatMul by a weight matrix, the transformer's projections and feed-forward
    layers (not attention's products); its conv head and Gaussian MLP (Conv, Gemm) cost little and
    stay float32: in int8 they moved P.835 fb48k files of the default model up to 0.61 MOS (PCC
    -0.024), the transformer alone 0.05."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    if head:
        return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    learned = [
        n
        for n in graph.node
        if (n.op_type == "Conv" and not n.input[1].endswith("dft.basis"))
        or (n.op_type in ("MatMul", "Gemm") and n.input[1] in weights)
    ]
    producer = {o: n for n in graph.node for o in n.output}
    inputs = {i.name for i in graph.input}
    names = {n.name for n in learned}
    return [n.name for n in learned if not _sees_linear_signal(n, producer, inputs, names)]


def _sees_linear_signal(node: Any, producer: dict[str, Any], inputs: set[str], learned: set[str]) -> bool:
    """Whether ``node``'s data input comes from a graph input (``inputs``: the waveform) through no
    learned node and no ``Log``: the signal itself, or a linear transform of it such as an STFT.
    ``producer`` maps each tensor name to the node that makes it."""
    todo, seen = [node.input[0]], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in inputs:
            return True
        p = producer.get(name)
        if p is None or p.op_type in _NOT_SIGNAL or p.name in learned:
            continue
        # the data inputs: all of an elementwise or joining op's, the first of any other (not shapes)
        todo.extend(i for i in (p.input if p.op_type in _JOINING else p.input[:1]) if i)
    return False


_NOT_SIGNAL = {"Log", "Shape", "Size", "Constant", "ConstantOfShape", "Range"}
_JOINING = {"Concat", "Add", "Sub", "Mul", "Div", "Sum", "Max", "Min", "Where"}


def _quantize(
    src: Path, out: Path, feeds: list[dict[str, np.ndarray]], nodes: list[str], percentile: float
) -> None:
    """Static QDQ of ``nodes`` of ``src`` into ``out``, calibrated on ``feeds``; metadata kept and
    marked int8."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    quantize_static(
        str(src),
        str(out),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=nodes,
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={"ActivationSymmetric": False, "CalibPercentile": percentile},
    )
    q = onnx.load(str(out))
    how = {
        "scheme": "static QDQ, int8 per-channel weights, uint8 activations",
        "nodes": len(nodes),
        "calibration_clips": len(feeds),
        "calibration_seconds": CALIBRATION_SECONDS,
        "percentile": percentile,
    }
    kept = {p.key: p.value for p in q.metadata_props}
    kept[KEY_PRECISION] = "int8"
    kept[KEY_INT8] = json.dumps(how)
    del q.metadata_props[:]
    for k, v in kept.items():
        q.metadata_props.add(key=k, value=v)
    onnx.save(q, str(out))


def quantize_pair(
    model: str | Path, clips: Sequence[Path], percentile: float = PERCENTILE, head: bool = False
) -> QuantizeResult:
    """Write ``M.frames.int8.onnx`` next to ``model`` (``M.onnx``) from its incremental pair, and with
    ``head`` also ``M.head.int8.onnx`` (when the head has weight matrices), calibrated on what the
    float32 frames graph gives for the same clips. The head is opt-in (check its accuracy on real
    speech first: scripts/int8_check.py); only its transformer's weight matrices are quantised."""
    import onnx
    import onnxruntime as ort

    frames, head_fp32 = pair_paths(model)
    if not (frames.is_file() and head_fp32.is_file()):
        raise QuantizeError(f"{model}: no incremental pair ({frames.name}); export it with --incremental")
    if not clips:
        raise QuantizeError("no calibration clips")
    src = onnx.load(str(frames), load_external_data=False)
    if KEY_INCREMENTAL not in {p.key for p in src.metadata_props}:
        raise ModelFileError(f"{frames}: no {KEY_INCREMENTAL} metadata: not an incremental frames graph")
    feeds = calibration_feeds(clips, [i.name for i in src.graph.input])
    frame_nodes = quantised_nodes(frames)
    head_nodes = quantised_nodes(head_fp32, head=True) if head else []
    _quantize(frames, int8_frames_path(model), feeds, frame_nodes, percentile)
    head_out = int8_head_path(model)
    head_out.unlink(missing_ok=True)
    if head_nodes:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(frames), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        head_feeds = [dict(zip(names, sess.run(None, f), strict=True)) for f in feeds]
        _quantize(head_fp32, head_out, head_feeds, head_nodes, percentile)
    return QuantizeResult(
        int8_frames_path(model),
        head_out if head_nodes else None,
        len(frame_nodes),
        len(head_nodes),
        len(feeds),
    )


def clips_from(source: Path, limit: int) -> list[Path]:
    """Up to ``limit`` audio files, evenly spread over a manifest CSV (any format samos reads) or a
    folder (searched recursively, sorted)."""
    if limit < 1:
        raise QuantizeError(f"the number of calibration clips must be >= 1, got {limit}")
    if source.is_dir():
        from samos.runtime.score_cli import AUDIO_EXTENSIONS

        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    elif source.is_file():
        from samos.data.manifest import read_manifest

        paths = [it.path for it in read_manifest(source)]
    else:
        raise QuantizeError(f"{source}: no such manifest or folder")
    if not paths:
        raise QuantizeError(f"{source}: no audio files")
    step = max(1, len(paths) // limit)
    return paths[::step][:limit]
