"""The frozen 16 kHz SSL branch: one intermediate layer of a pretrained speech encoder.

Two kinds of encoder, one interface (:class:`SSLEncoder`: ``.dim``, ``.layer``,
``forward(wave16 [B, T]) -> [B, frames, dim]``):

* :class:`Wav2Vec2Encoder`: a torchaudio wav2vec2-family model (wav2vec2, XLS-R 300M/1B/2B, HuBERT,
  WavLM) TRUNCATED after ``layer``: transformer layers above it are never built (and their weights
  never loaded), and the output is that layer's output, exactly what
  ``model.extract_features(x, num_layers=layer)[0][-1]`` gives for the full model.
  Weights come from a torchaudio bundle already in the torch hub cache, a torchaudio state-dict
  file, a Hugging Face model folder, or random initialisation from ``arch`` (tests). Nothing is
  ever downloaded.
  With ``layer_mix="mean"`` the output is the mean of layers 1..``layer`` instead.
* :class:`DistillMOSEncoder`: the CNN + transformer inside the PyPI package distillmos (weights ship
  with it), rebuilt so that any input length works and the graph exports to ONNX with a dynamic
  time axis. Output frames every 20 ms, 200 wide.

A frozen encoder (the default) has ``requires_grad=False`` everywhere and stays in eval mode even
when the parent module calls ``.train()``.
"""

from __future__ import annotations

from typing import Any

from samos.config import SSLConfig
from samos.model.ssl.base import SSLEncoder, SSLWeightsError
from samos.model.ssl.distillmos import (
    DISTILLMOS_DIM,
    DISTILLMOS_LAYERS,
    DistillMOSEncoder,
    distillmos_weights_path,
)
from samos.model.ssl.wav2vec2 import Wav2Vec2Arch, Wav2Vec2Encoder, bundle_weights_path, resolve_wav2vec2

__all__ = [
    "DISTILLMOS_DIM",
    "DISTILLMOS_LAYERS",
    "DistillMOSEncoder",
    "SSLEncoder",
    "SSLWeightsError",
    "Wav2Vec2Arch",
    "Wav2Vec2Encoder",
    "build_ssl_encoder",
    "bundle_weights_path",
    "distillmos_weights_path",
    "encoder_from_description",
    "resolve_wav2vec2",
]


def build_ssl_encoder(cfg: SSLConfig, *, load_weights: bool = True) -> SSLEncoder:
    """The SSL encoder ``cfg`` describes, truncated after ``cfg.layer`` and frozen if ``cfg.frozen``.

    ``load_weights=False`` builds the architecture only (random weights; a checkpoint's stored
    weights are loaded afterwards). Raises :class:`SSLWeightsError` (a ValueError) with a fix when
    weights are missing or do not fit; ``family="none"`` has no encoder (ValueError).
    """
    if cfg.family == "none":
        raise SSLWeightsError("ssl.family is 'none': this model has no SSL branch")
    if cfg.family == "distillmos":
        return DistillMOSEncoder(
            cfg.layer, layer_mix=cfg.layer_mix, frozen=cfg.frozen, load_weights=load_weights
        )
    arch, state = resolve_wav2vec2(cfg, load_weights=load_weights)
    return Wav2Vec2Encoder(arch, cfg.layer, layer_mix=cfg.layer_mix, frozen=cfg.frozen, state=state)


def encoder_from_description(desc: dict[str, Any], *, frozen: bool) -> SSLEncoder:
    """Rebuild an encoder's architecture from :meth:`SSLEncoder.describe` (weights loaded afterwards)."""
    kind = desc.get("kind")
    mix = desc.get("layer_mix", "last")  # absent in checkpoints written before layer_mix existed
    if kind == "distillmos":
        return DistillMOSEncoder(int(desc["layer"]), layer_mix=mix, frozen=frozen, load_weights=False)
    if kind == "wav2vec2":
        arch = Wav2Vec2Arch.from_dict(desc["arch"])
        return Wav2Vec2Encoder(arch, int(desc["layer"]), layer_mix=mix, frozen=frozen)
    raise SSLWeightsError(f"unknown SSL encoder description {kind!r}")
