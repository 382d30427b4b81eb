"""The incremental pair (``samos export --incremental``): ``M.frames.onnx`` and ``M.head.onnx``.

Both graphs come from the model's own split (:meth:`SAMOS.frame_features`,
:meth:`SAMOS.window_head`; a :class:`SAMOSEnsemble` has the same two), so any change to the heads
ships through this code unchanged. The edge frames (how many frames at each end of a piece of audio
see its edges) are measured on the model itself, not assumed: frames of slices of a long random
signal against the frames of the whole signal. The runtime side is :mod:`samos.runtime.incremental`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from samos.audio import SSL_RATE
from samos.export.onnx_export import (
    MAX_SECONDS,
    OPSET,
    ExportError,
    _run_exporter,
    check_graph,
    save_model,
)
from samos.model.ensemble import SAMOSEnsemble
from samos.model.samos_model import SAMOS
from samos.runtime.incremental import FrameGeometry, pair_paths
from samos.runtime.modelinfo import INPUT_WAVE16, INPUT_WAVE48, KEY_INCREMENTAL, OUTPUT_MOS, OUTPUT_STD

FRAME_SAMPLES = 160
"""16 kHz samples per frame of the pair's grid (10 ms)."""
_PROBE_FRAMES = (400, 100, 300)
"""Edge measurement: a long signal of 400 frames (4 s), and its slice [100, 300): edges of up to 50
frames (0.5 s) each side can be measured."""


class _Frames(nn.Module):
    def __init__(self, model: SAMOS | SAMOSEnsemble) -> None:
        super().__init__()
        self.model = model

    def forward(self, *waves: Tensor) -> tuple[Tensor, ...]:
        named = dict(zip(self.model.input_names, waves, strict=True))
        return self.model.frame_features(named.get(INPUT_WAVE16), named.get(INPUT_WAVE48))


class _Head(nn.Module):
    def __init__(self, model: SAMOS | SAMOSEnsemble) -> None:
        super().__init__()
        self.model = model

    def forward(self, *frames: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self.model.window_head(*frames)
        return mean, torch.sqrt(var)


def _waves(model: SAMOS | SAMOSEnsemble, samples: int, gen: torch.Generator) -> tuple[Tensor, ...]:
    w = {
        INPUT_WAVE16: 0.3 * torch.randn(2, samples, generator=gen),
        INPUT_WAVE48: 0.3 * torch.randn(2, 3 * samples, generator=gen),
    }
    return tuple(w[n] for n in model.input_names)


@torch.no_grad()
def measure_geometry(model: SAMOS | SAMOSEnsemble) -> FrameGeometry:
    """Edge frames of ``model.frame_features``, measured: frames of a slice vs the whole signal.

    Raises ExportError when the model has no incremental split or interior frames of a slice differ
    from the whole signal's (the frame part is not convolutional in time).
    """
    if not model.incremental:
        raise ExportError(f"the {model.cfg.ssl.family} encoder normalises whole inputs: no incremental pair")
    wrap = _Frames(model.eval())
    n, a, b = _PROBE_FRAMES
    left = right = 0
    for seed in (1, 2, 3):  # several signals: an edge frame may match by chance in one of them
        waves = _waves(model, n * FRAME_SAMPLES, torch.Generator().manual_seed(seed))
        full = wrap(*waves)
        part = wrap(*(w[:, a * w.shape[1] // n : b * w.shape[1] // n] for w in waves))
        for f, p in zip(full, part, strict=True):
            if p.shape[1] != b - a:
                raise ExportError(
                    f"frame features are not on the 10 ms grid ({p.shape[1]} frames for {b - a})"
                )
            scale = f.abs().amax().clamp(min=1e-6)
            bad = ((f[:, a:b] - p).abs().amax(dim=(0, 2)) > 1e-5 * scale).nonzero().flatten().tolist()
            m = b - a
            if any(m // 4 <= i < m - m // 4 for i in bad):
                raise ExportError(f"frames differ away from the edges ({bad}): not convolutional in time")
            lo, hi = [i for i in bad if i < m // 2], [i for i in bad if i >= m // 2]
            left = max(left, max(lo) + 1 if lo else 0)
            right = max(right, m - min(hi) if hi else 0)
    return FrameGeometry(FRAME_SAMPLES, left, right)


def export_pair(
    model: SAMOS | SAMOSEnsemble, out: str | Path, metadata: dict[str, str], opset: int = OPSET
) -> tuple[Path, Path]:
    """Write ``out``'s pair (``.frames.onnx``, ``.head.onnx``) with ``metadata`` (the whole-window
    file's) plus ``samos.incremental``. Returns the two paths; raises ExportError."""
    model = model.eval()
    geo = measure_geometry(model)
    names = model.frame_names
    inputs = model.input_names
    frames_path, head_path = pair_paths(out)
    gen = torch.Generator().manual_seed(0)
    batch = torch.export.Dim("batch", min=1, max=4096)
    min_samples = max(2, geo.edge_frames + 1) * FRAME_SAMPLES
    samples = torch.export.Dim("samples", min=min_samples, max=MAX_SECONDS * SSL_RATE)
    shapes: dict[str, dict[int, Any]] = {
        INPUT_WAVE16: {0: batch, 1: samples},
        INPUT_WAVE48: {0: batch, 1: 3 * samples},
    }
    waves = _waves(model, 2 * SSL_RATE, gen)
    info = {
        "frame_samples": geo.frame_samples,
        "edge_left": geo.left,
        "edge_right": geo.right,
        "frames": list(names),
    }
    try:
        prog = _run_exporter(
            _Frames(model),
            waves,
            inputs,
            min_samples,
            opset,
            names,
            {"waves": tuple(shapes[n] for n in inputs)},
        )
        with torch.no_grad():
            example = _Frames(model)(*waves)
        dims = {n: {0: batch, 1: torch.export.Dim(f"{n}_n", min=1, max=MAX_SECONDS * 100)} for n in names}
        head = _run_exporter(
            _Head(model),
            tuple(example),
            names,
            1,
            opset,
            (OUTPUT_MOS, OUTPUT_STD),
            {"frames": tuple(dims[n] for n in names)},
        )
    except Exception as e:  # noqa: BLE001 - the exporter raises many types; report them as one
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ExportError(
            f"torch.onnx.export of the incremental pair failed: {type(e).__name__}: {first}"
        ) from e
    for path, program, role, ins, outs in (
        (frames_path, prog, "frames", inputs, names),
        (head_path, head, "head", names, (OUTPUT_MOS, OUTPUT_STD)),
    ):
        proto = program.model_proto
        meta = dict(metadata)
        meta[KEY_INCREMENTAL] = json.dumps({"role": role, **info})
        onnx.helper.set_model_props(proto, meta)
        check_graph(proto, ins, outs)
        save_model(proto, path)
    check_pair(model, frames_path, head_path, waves)
    return frames_path, head_path


PAIR_PARITY_MOS = 1e-4
"""Largest MOS difference allowed between the written pair and the torch split."""


@torch.no_grad()
def check_pair(
    model: SAMOS | SAMOSEnsemble, frames_path: Path, head_path: Path, waves: tuple[Tensor, ...]
) -> float:
    """The written pair against ``model.window_head(*model.frame_features(...))`` on ``waves``;
    raises ExportError above :data:`PAIR_PARITY_MOS`."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    frames = ort.InferenceSession(str(frames_path), so, providers=["CPUExecutionProvider"])
    head = ort.InferenceSession(str(head_path), so, providers=["CPUExecutionProvider"])
    feeds = dict(zip(model.input_names, (w.numpy() for w in waves), strict=True))
    out = frames.run(None, feeds)
    got = head.run([OUTPUT_MOS], dict(zip(model.frame_names, out, strict=True)))[0]
    want = model.window_head(*_Frames(model)(*waves))[0].numpy()
    diff = float(abs(got - want).max())
    if diff > PAIR_PARITY_MOS:
        raise ExportError(f"the incremental pair differs from the torch model by {diff:.2e} MOS")
    return diff


__all__ = ["FRAME_SAMPLES", "PAIR_PARITY_MOS", "check_pair", "export_pair", "measure_geometry"]
