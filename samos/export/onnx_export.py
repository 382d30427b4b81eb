"""torch -> ONNX: one graph ``(wave16 [batch, T], wave48 [batch, 3T]) -> (mos [batch], mos_std [batch])``.

Uses torch's dynamo exporter (opset 18+) with dynamic batch and time (``wave48``'s length is tied to
``3 * T``). The graph holds no resampling (the runtime resamples with soxr) and no STFT/DFT op (the
model's front end is a Conv1d DFT, which every execution provider runs). The file describes itself
in ``metadata_props`` (see ``samos.runtime.modelinfo``); ``--fp16`` writes a half-precision copy whose
inputs and outputs stay float32.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from samos import __version__
from samos.audio import SPEC_RATE, SSL_RATE
from samos.config import to_dict
from samos.model.ensemble import SAMOSEnsemble
from samos.model.samos_model import SAMOS
from samos.runtime.modelinfo import (
    INPUT_WAVE16,
    INPUT_WAVE48,
    KEY_MEMBERS,
    OUTPUT_MOS,
    OUTPUT_STD,
    Calibration,
    build_metadata,
)

OPSET = 18
FORBIDDEN_OPS = frozenset({"STFT", "DFT", "MelWeightMatrix", "HannWindow", "HammingWindow", "BlackmanWindow"})
"""Ops with no GPU kernel in onnxruntime (or that signal an in-graph spectral front end)."""
MAX_SECONDS = 3600
"""Upper bound of the dynamic time axis given to the exporter (an hour at 16 kHz)."""


class ExportError(RuntimeError):
    """The model could not be exported, or the graph breaks the model-file contract."""


class _Both(nn.Module):
    """``(wave16, wave48) -> (mean, sqrt(var))``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, wave16: Tensor, wave48: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self.model(wave16, wave48)
        return mean, torch.sqrt(var)


class _Only16(_Both):
    def forward(self, wave16: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        mean, var = self.model(wave16, None)
        return mean, torch.sqrt(var)


class _Only48(_Both):
    def forward(self, wave48: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        mean, var = self.model(None, wave48)
        return mean, torch.sqrt(var)


def model_inputs(model: SAMOS | SAMOSEnsemble) -> tuple[str, ...]:
    """Which graph inputs a SAMOS model needs, from its config (both, wave16 only or wave48 only)."""
    cfg = model.cfg
    names = []
    if cfg.ssl.enabled:
        names.append(INPUT_WAVE16)
    if cfg.spec.enabled:
        names.append(INPUT_WAVE48)
    return tuple(names)


def wrap_for_export(model: SAMOS | SAMOSEnsemble) -> nn.Module:
    """The module that is exported: the model with ``std = sqrt(var)`` and only the inputs it uses."""
    inputs = model_inputs(model)
    cls = {(INPUT_WAVE16, INPUT_WAVE48): _Both, (INPUT_WAVE16,): _Only16, (INPUT_WAVE48,): _Only48}[inputs]
    return cls(model).eval()


def members_metadata(model: SAMOS | SAMOSEnsemble) -> dict[str, str]:
    """``samos.members`` for an ensemble (:mod:`samos.export.from_onnx` rebuilds it from that); none
    for one model."""
    return {KEY_MEMBERS: str(model.size)} if isinstance(model, SAMOSEnsemble) else {}


def weights_sha256(state_dict: dict[str, Tensor]) -> str:
    """sha256 over the weights: for each tensor in name order, its name, dtype, shape and bytes.

    Identifies the trained weights independently of the file format (the fp32 and fp16 exports of one
    checkpoint carry the same value).
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@dataclass(frozen=True)
class ExportSettings:
    """What the export writes into the file besides the weights."""

    window_seconds: float = 10.0
    """Recommended scoring window (the training crop), seconds."""
    calibration: Calibration = Calibration()
    min_seconds: float | None = None
    """Shortest input; None: the model's own ``min_seconds``."""
    opset: int = OPSET
    example_seconds: float = 2.0
    """Length of the example input traced by the exporter."""
    extra_metadata: tuple[tuple[str, str], ...] = ()


def _run_exporter(
    wrapper: nn.Module,
    args: tuple[Tensor, ...],
    inputs: tuple[str, ...],
    dim_min: int,
    opset: int,
    outputs: tuple[str, ...] = (OUTPUT_MOS, OUTPUT_STD),
    shapes: dict[str, Any] | None = None,
) -> Any:
    """torch.onnx.export (dynamo) of ``wrapper``; ``shapes`` default: the waveform inputs' dynamic axes."""
    # The exporter logs a warning per optional torchvision op it cannot register: noise for this model.
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration_log.level
    registration_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            return torch.onnx.export(
                wrapper,
                args,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_shapes=shapes if shapes is not None else _dynamic_shapes(inputs, dim_min),
                opset_version=opset,
                dynamo=True,
                custom_translation_table={torch.ops.aten.remainder.Scalar: _remainder_scalar},
                external_data=False,
                verbose=False,
            )
    finally:
        registration_log.setLevel(level)


def _remainder_scalar(self: Any, other: Any) -> Any:
    """``aten::remainder.Scalar`` that also accepts a symbolic scalar (``arange(n) % frames`` with a
    dynamic ``frames``), which torch 2.11's own translation turns into ``int(SymbolicTensor)`` and fails."""
    from onnxscript import ir
    from onnxscript import opset18 as op

    integer = self.dtype.is_integer()
    other = (
        ir.tensor(other, dtype=self.dtype) if isinstance(other, (int, float)) else op.CastLike(other, self)
    )
    if integer:
        return op.Mod(self, other)
    return op.Sub(self, op.Mul(op.Floor(op.Div(self, other)), other))


def _dynamic_shapes(inputs: tuple[str, ...], min_samples: int) -> dict[str, dict[int, Any]]:
    batch = torch.export.Dim("batch", min=1, max=4096)
    samples = torch.export.Dim("samples", min=min_samples, max=MAX_SECONDS * SSL_RATE)
    shapes: dict[str, dict[int, Any]] = {}
    if INPUT_WAVE16 in inputs:
        shapes[INPUT_WAVE16] = {0: batch, 1: samples}
    if INPUT_WAVE48 in inputs:
        shapes[INPUT_WAVE48] = {0: batch, 1: (SPEC_RATE // SSL_RATE) * samples}
    return shapes


def export_onnx(
    model: SAMOS | SAMOSEnsemble, out: str | Path, settings: ExportSettings = ExportSettings()
) -> onnx.ModelProto:
    """Export a SAMOS model (fp32) to ``out``; returns the saved ModelProto (with its metadata).

    Raises ExportError when the exporter fails or the graph breaks the contract (forbidden ops,
    wrong input/output names).
    """
    model = model.eval()
    wrapper = wrap_for_export(model)
    inputs = model_inputs(model)
    min_samples = int(getattr(model, "min_samples", 1))
    min_seconds = settings.min_seconds if settings.min_seconds is not None else min_samples / SSL_RATE
    t = max(int(settings.example_seconds * SSL_RATE), 2 * min_samples)
    gen = torch.Generator().manual_seed(0)
    example = {
        INPUT_WAVE16: 0.1 * torch.randn(2, t, generator=gen),
        INPUT_WAVE48: 0.1 * torch.randn(2, 3 * t, generator=gen),
    }
    args = tuple(example[n] for n in inputs)
    dim_min = max(2, min_samples)
    for attempt in range(3):
        try:
            program = _run_exporter(wrapper, args, inputs, dim_min, settings.opset)
            break
        except Exception as e:  # noqa: BLE001 - the exporter raises many types; report them as one
            # torch.export proves a tighter lower bound than the model's own min_samples for some
            # architectures (e.g. a conv stack's padding); it says so in a suggested fix: retry with it.
            m = re.search(r"samples = Dim\('samples', min=(\d+)", str(e))
            if m and attempt < 2 and int(m.group(1)) > dim_min:
                dim_min = int(m.group(1))
                continue
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ExportError(f"torch.onnx.export failed: {type(e).__name__}: {first}") from e
    min_seconds = max(min_seconds, dim_min / SSL_RATE)
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise ExportError("torch.onnx.export returned no program")
    proto = program.model_proto
    meta = build_metadata(
        version=__version__,
        config=to_dict(model.cfg),
        ssl_rate=SSL_RATE,
        spec_rate=SPEC_RATE,
        n_fft=model.cfg.spec.n_fft,
        hop=model.cfg.spec.hop,
        weights_sha256=weights_sha256(model.state_dict()),
        calibration=settings.calibration,
        min_seconds=min_seconds,
        window_seconds=max(settings.window_seconds, min_seconds),
        precision="fp32",
        extra={**members_metadata(model), **dict(settings.extra_metadata)},
    )
    onnx.helper.set_model_props(proto, meta)
    check_graph(proto, inputs)
    save_model(proto, out)
    return proto


def check_graph(
    proto: onnx.ModelProto,
    inputs: tuple[str, ...] | None = None,
    outputs: tuple[str, ...] = (OUTPUT_MOS, OUTPUT_STD),
) -> None:
    """Raise ExportError when the graph has a forbidden op or the wrong inputs/outputs."""
    ops = {n.op_type for n in _all_nodes(proto.graph)}
    bad = sorted(ops & FORBIDDEN_OPS)
    if bad:
        raise ExportError(f"the graph holds {', '.join(bad)}: the model's front end must be the Conv1d DFT")
    got_in = tuple(i.name for i in proto.graph.input)
    if inputs is not None and got_in != inputs:
        raise ExportError(f"graph inputs {got_in} != expected {inputs}")
    got_out = tuple(o.name for o in proto.graph.output)
    if got_out != outputs:
        raise ExportError(f"graph outputs {got_out} != expected {outputs}")
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if opset < OPSET:
        raise ExportError(f"graph opset {opset} < {OPSET}")


def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    nodes = list(graph.node)
    for n in graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                nodes += _all_nodes(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    nodes += _all_nodes(g)
    return nodes


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision copy of an exported fp32 graph; inputs and outputs stay float32.

    Uses onnxconverter-common's converter (Cast nodes at the boundaries); metadata is copied with
    ``samos.precision`` set to fp16.
    """
    try:
        from onnxconverter_common import float16
    except ImportError as e:  # pragma: no cover - declared in the train extra
        raise ExportError("--fp16 needs onnxconverter-common (pip install 'samos[train]')") from e
    # The converter trusts value_info for every tensor type: infer the missing ones first, and turn the
    # graph's own Cast-to-float32 nodes into Cast-to-float16 where the converter made their outputs fp16
    # (this converter version rewrites value_info but not a Cast's "to").
    src = onnx.shape_inference.infer_shapes(proto)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = float16.convert_float_to_float16(
            src,
            keep_io_types=True,
            disable_shape_infer=True,
            op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST),
        )
    types = {v.name: v.type.tensor_type.elem_type for v in [*half.graph.value_info, *half.graph.output]}
    for node in half.graph.node:
        if node.op_type == "Cast":
            to = next(a for a in node.attribute if a.name == "to")
            if to.i == onnx.TensorProto.FLOAT and types.get(node.output[0]) == onnx.TensorProto.FLOAT16:
                to.i = onnx.TensorProto.FLOAT16
    meta = {p.key: p.value for p in proto.metadata_props}
    meta["samos.precision"] = "fp16"
    del half.metadata_props[:]
    onnx.helper.set_model_props(half, meta)
    check_graph(half)
    return half


def save_model(proto: onnx.ModelProto, out: str | Path) -> None:
    """Write ``proto`` to ``out`` atomically (a temporary file, then rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save_model(proto, str(tmp))
    tmp.replace(out)


def save_fp16(proto: onnx.ModelProto, out: str | Path) -> onnx.ModelProto:
    """Convert with :func:`to_fp16` and save to ``out``."""
    half = to_fp16(proto)
    save_model(half, out)
    return half


def graph_ops(path: str | Path) -> set[str]:
    """Op types used in an ONNX file (for tests and checks)."""
    return {n.op_type for n in _all_nodes(onnx.load(str(path)).graph)}


__all__ = [
    "FORBIDDEN_OPS",
    "ExportError",
    "ExportSettings",
    "check_graph",
    "export_onnx",
    "graph_ops",
    "model_inputs",
    "save_fp16",
    "save_model",
    "to_fp16",
    "weights_sha256",
    "wrap_for_export",
]
