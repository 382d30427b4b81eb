"""Helpers for the model tests: small random encoder architectures and a speech-like test signal."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

TINY_CONV = [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]]


def tiny_arch(layers: int = 4, *, layer_norm_first: bool = False, wavlm: bool = False) -> dict[str, Any]:
    """kwargs of torchaudio's wav2vec2_model / wavlm_model for a ~100 k-parameter encoder (48 wide)."""
    arch: dict[str, Any] = {
        "extractor_mode": "layer_norm" if layer_norm_first else "group_norm",
        "extractor_conv_layer_config": TINY_CONV,
        "encoder_embed_dim": 48,
        "encoder_num_layers": layers,
        "encoder_num_heads": 4,
        "encoder_ff_interm_features": 96,
        "encoder_pos_conv_kernel": 16,
        "encoder_pos_conv_groups": 4,
        "encoder_layer_norm_first": layer_norm_first,
    }
    if wavlm:
        arch.update(encoder_num_buckets=32, encoder_max_distance=64)
    return arch


def speechlike(seconds: float, rate: int = 16_000, seed: int = 0) -> torch.Tensor:
    """A harmonic tone with a syllable-rate envelope plus a little noise, ``[1, samples]`` float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    x = 0.1 * voiced * env + 0.003 * rng.standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32)).unsqueeze(0)
