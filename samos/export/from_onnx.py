"""Rebuild the torch SAMOS module of an exported whole-window ONNX file (``samos export --from-onnx``).

The shipped ``default.onnx`` has no training checkpoint in the repository; its pair is made from the
file itself. The architecture comes from ``samos.config``; every trained weight is read back from
the graph's initializers by name (``model.<state-dict key>``). What the exporter folded or renamed:

* the frozen Distill-MOS weights it transposed into anonymous MatMul constants come from the
  installed distillmos package, as when the file was made;
* weights equal to another one (e.g. untrained LayerNorms) are merged under one name: such a file is
  refused with a clear error (export from its checkpoint instead);
* BatchNorm2d layers of the spectrogram encoder were folded into the preceding convolutions (the
  initializers hold the folded weights): they become identities.

A file with ``samos.members`` > 1 is a seed ensemble (:class:`~samos.model.ensemble.SAMOSEnsemble`)
of that many models with the file's config.

The rebuilt module is then checked against the file itself with onnxruntime on audio: any weight that
was not recovered exactly shows up there, and the rebuild is refused (ExportError).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from samos.config import ConfigError, ModelConfig, from_dict
from samos.export.onnx_export import ExportError
from samos.model.ensemble import EnsembleError, SAMOSEnsemble
from samos.model.heads import SpectrogramEncoder
from samos.model.samos_model import SAMOS
from samos.runtime.modelinfo import KEY_CONFIG, KEY_MEMBERS

PARITY_MOS = 1e-3
"""Largest MOS difference allowed between the rebuilt module and the file: the float32 tolerance of
``samos export --verify`` (torch against onnxruntime). The default of 2026-12-05 differs from its own
file by up to 3.7e-4 MOS on some 4 s probes, the same for the checkpoint it was exported from and
for its rebuild; a weight loaded wrongly moves scores by far more (tests/export/test_from_onnx.py)."""


def model_from_onnx(
    path: str | Path, audio: np.ndarray | None = None
) -> tuple[SAMOS | SAMOSEnsemble, dict[str, str]]:
    """``(model, metadata)`` rebuilt from a samos ONNX file; ``audio``: 16 kHz float32 ``[T]`` for
    the parity check (default: a seeded noise burst). Raises ExportError."""
    path = Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # noqa: BLE001 - onnx raises several types for a bad file
        raise ExportError(f"{path}: not a loadable ONNX model ({e})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    try:
        cfg = from_dict(ModelConfig, json.loads(meta[KEY_CONFIG]))
    except (KeyError, ValueError, ConfigError) as e:
        raise ExportError(f"{path}: no usable samos.config metadata ({e})") from None
    try:
        members = int(meta.get(KEY_MEMBERS, "1"))
        model: SAMOS | SAMOSEnsemble = (
            SAMOSEnsemble([SAMOS(cfg) for _ in range(members)]) if members > 1 else SAMOS(cfg)
        )
    except (ValueError, EnsembleError) as e:
        raise ExportError(
            f"{path}: {KEY_MEMBERS}={meta.get(KEY_MEMBERS)!r} does not describe a model ({e})"
        ) from None
    model.eval()
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for prefix, member in _members(model):
        _fold_batchnorms(member, inits, prefix)
    state = model.state_dict()
    loaded = 0
    for key, value in state.items():
        src = inits.get("model." + key)
        if src is None:
            if model.ssl is not None and model.ssl.frozen and re.match(r"(members\.\d+\.)?ssl\.", key):
                continue  # frozen encoder weights: from the distillmos package
            if key.endswith("num_batches_tracked"):
                continue
            raise ExportError(
                f"{path}: weight {key} is not in the file under its name (the exporter merges equal "
                "weights, e.g. untrained norms); rebuild from the checkpoint instead"
            )
        if tuple(src.shape) != tuple(value.shape):
            raise ExportError(
                f"{path}: weight {key} has shape {src.shape}, the config says {tuple(value.shape)}"
            )
        state[key] = torch.from_numpy(np.array(src))
        loaded += 1
    model.load_state_dict(state)
    check_parity(model, path, audio)
    return model.eval(), meta


def _members(model: SAMOS | SAMOSEnsemble) -> list[tuple[str, SAMOS]]:
    """``(initializer name prefix, SAMOS)`` for the model or each member of an ensemble."""
    if isinstance(model, SAMOSEnsemble):
        return [(f"model.members.{i}.", m) for i, m in enumerate(model.members)]  # type: ignore[misc]
    return [("model.", model)]


def _fold_batchnorms(model: SAMOS, inits: dict[str, np.ndarray], prefix: str = "model.") -> None:
    """BatchNorm2d layers with no initializers were folded into their conv: make them identities."""
    if not isinstance(model.spec_encoder, SpectrogramEncoder):
        return
    layers = model.spec_encoder.encoder
    for i, m in enumerate(layers):
        if isinstance(m, nn.BatchNorm2d) and f"{prefix}spec_encoder.encoder.{i}.running_mean" not in inits:
            layers[i] = nn.Identity()


@torch.no_grad()
def check_parity(model: SAMOS | SAMOSEnsemble, path: Path, audio: np.ndarray | None = None) -> float:
    """Largest MOS difference between ``model`` and the ONNX file on 4 s of ``audio`` (and its
    second half at a lower level); raises ExportError above :data:`PARITY_MOS`."""
    import onnxruntime as ort
    import soxr

    if audio is None:
        rng = np.random.default_rng(0)
        audio = (0.2 * rng.standard_normal(64000) * np.sin(np.linspace(0, 60, 64000)) ** 2).astype(np.float32)
    w16 = np.stack([audio[:64000], 0.3 * audio[-32000:].repeat(2)]).astype(np.float32)
    w48 = np.stack([soxr.resample(w, 16000, 48000).astype(np.float32)[: 3 * w16.shape[1]] for w in w16])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"wave16": w16, "wave48": w48}
    want = sess.run(["mos"], {i.name: feeds[i.name] for i in sess.get_inputs()})[0]
    got = model(torch.from_numpy(w16), torch.from_numpy(w48))[0].numpy()
    diff = float(np.max(np.abs(got - want)))
    if diff > PARITY_MOS:
        raise ExportError(f"{path}: the rebuilt model differs from the file by {diff:.2e} MOS; not rebuilt")
    return diff


__all__ = ["PARITY_MOS", "check_parity", "model_from_onnx"]
