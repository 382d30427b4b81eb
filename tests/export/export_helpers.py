"""Tiny random SAMOS models (both branches / spectrogram only) for the export tests.

Imported as ``from export_helpers import ...`` (pytest puts this folder on sys.path)."""

from __future__ import annotations

import torch

from samos.config import FusionConfig, ModelConfig, SpecConfig, SSLConfig, SSLHeadConfig
from samos.model import SAMOS

TINY_ARCH = {
    "extractor_conv_layer_config": [[8, 10, 5], [8, 3, 2], [8, 3, 2], [8, 3, 2], [8, 2, 2], [8, 2, 2]],
    "encoder_embed_dim": 16,
    "encoder_pos_conv_kernel": 8,
    "encoder_pos_conv_groups": 2,
    "encoder_num_layers": 1,
    "encoder_num_heads": 2,
    "encoder_ff_interm_features": 32,
}


def tiny_config(ssl: bool = True, spec: bool = True) -> ModelConfig:
    return ModelConfig(
        ssl=SSLConfig(family="wav2vec2", arch=TINY_ARCH, layer=1) if ssl else SSLConfig(family="none"),
        ssl_head=SSLHeadConfig(channels=(8, 8, 8)),
        spec=SpecConfig(enabled=spec, channels=(4, 4, 8, 8)),
        fusion=FusionConfig(hidden=(16, 8)),
    )


def tiny_model(ssl: bool = True, spec: bool = True, seed: int = 0) -> SAMOS:
    torch.manual_seed(seed)
    return SAMOS(tiny_config(ssl, spec)).eval()
