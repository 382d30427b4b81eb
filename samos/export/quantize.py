"""Static int8 frames graphs: ``M.frames.onnx`` -> ``M.frames.int8.onnx`` (CPU streaming, about 2x cheaper).

The frames graph of an incremental pair is almost all convolution (the Distill-MOS CNN is 90% of the
default model's FLOPs). Its learned convolutions are quantised statically (QDQ, int8 weights per output
channel, uint8 activations) with onnxruntime's quantiser; the DFT front ends (fixed bases), the
magnitude and log stages and the head stay float32. Activation ranges are calibrated on real speech at
the stream gain the runtime uses (``1 / peak`` of the first window), with the 99.99th percentile of
each activation: min/max ranges are stretched by rare peaks and moved MOS several times more on the
P.835 and vmc24t3 clips (samos/models/MODEL_CARD.md, "Int8").

Dynamic int8 is not offered: it was 2.5-3x slower on CPUs without VNNI (../shared/docs/NOTES.md).
The runtime picks ``M.frames.int8.onnx`` on the CPU provider when it exists (``Scorer(int8=True)``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samos.audio import SPEC_RATE, SSL_RATE, load_audio, resample
from samos.runtime.incremental import PEAK_EPS, int8_frames_path, pair_paths
from samos.runtime.modelinfo import KEY_INCREMENTAL, KEY_PRECISION, ModelFileError

CALIBRATION_SECONDS = 4.0
"""Audio per calibration clip (its first seconds), as one monitor window."""
PERCENTILE = 99.99
KEY_INT8 = "samos.int8"


class QuantizeError(ValueError):
    """The frames graph or the calibration clips cannot be used."""


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_frames` wrote: ``out``, the quantised ``convs`` and the ``clips`` used."""

    out: Path
    convs: int
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


def learned_convs(model_path: Path) -> list[str]:
    """Names of the graph's Conv nodes with learned weights (a DFT basis is not learned)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "Conv" and not n.input[1].endswith("dft.basis")]


def quantize_frames(model: str | Path, clips: Sequence[Path], percentile: float = PERCENTILE) -> QuantizeResult:
    """Write ``M.frames.int8.onnx`` next to ``model`` (``M.onnx``) from its ``M.frames.onnx``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    frames, _ = pair_paths(model)
    if not frames.is_file():
        raise QuantizeError(f"{model}: no incremental pair ({frames.name}); export it with --incremental")
    if not clips:
        raise QuantizeError("no calibration clips")
    src = onnx.load(str(frames), load_external_data=False)
    meta = {p.key: p.value for p in src.metadata_props}
    if KEY_INCREMENTAL not in meta:
        raise ModelFileError(f"{frames}: no {KEY_INCREMENTAL} metadata: not an incremental frames graph")
    inputs = [i.name for i in src.graph.input]
    feeds = calibration_feeds(clips, inputs)
    convs = learned_convs(frames)

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[dict[str, np.ndarray]] = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    out = int8_frames_path(model)
    quantize_static(
        str(frames),
        str(out),
        _Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=convs,
        calibrate_method=CalibrationMethod.Percentile,
        extra_options={"ActivationSymmetric": False, "CalibPercentile": percentile},
    )
    q = onnx.load(str(out))
    how = {"scheme": "static QDQ, int8 per-channel weights, uint8 activations", "convs": len(convs),
           "calibration_clips": len(feeds), "calibration_seconds": CALIBRATION_SECONDS, "percentile": percentile}
    kept = {p.key: p.value for p in q.metadata_props}
    kept[KEY_PRECISION] = "int8"
    kept[KEY_INT8] = json.dumps(how)
    del q.metadata_props[:]
    for k, v in kept.items():
        q.metadata_props.add(key=k, value=v)
    onnx.save(q, str(out))
    return QuantizeResult(out, len(convs), len(feeds))


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
