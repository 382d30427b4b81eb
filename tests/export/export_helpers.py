"""Tiny random SAMOS models (both branches / spectrogram only) for the export tests.

Imported as ``from export_helpers import ...`` (pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np
import torch

from samos.config import FusionConfig, ModelConfig, SpecConfig, SSLConfig, SSLHeadConfig
from samos.model import SAMOS
from samos.runtime import Scorer
from samos.runtime.incremental import StreamFrames, WindowJob

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


def tiny_distill_model(seed: int = 0) -> SAMOS:
    """The Distill-MOS encoder truncated after layer 1 (its frame part is the real one) with small
    heads and a small spectrogram branch: a model with an incremental split."""
    torch.manual_seed(seed)
    cfg = ModelConfig(
        ssl=SSLConfig(family="distillmos", layer=1),
        ssl_head=SSLHeadConfig(channels=(8, 8, 8)),
        spec=SpecConfig(channels=(4, 4, 8, 8)),
        fusion=FusionConfig(hidden=(16, 8)),
    )
    model = SAMOS(cfg).eval()
    with torch.no_grad():
        # Norm weights as training leaves them (all different: the exporter merges equal initializers)
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm) and m.weight.requires_grad:
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        # BatchNorm statistics that are not the identity (folded into the convs by the exporter)
        for m in model.spec_encoder.modules():  # type: ignore[union-attr]
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def stream_windows(
    scorer: Scorer, w16: np.ndarray, w48: np.ndarray, hop: int, window: int = 32000
) -> tuple[list[float], list[WindowJob]]:
    """One stream's windows (``window`` 16 kHz samples every ``hop``) scored one by one through the
    incremental pair: the raw MOS of each, and the jobs (with the stream's state, its gain)."""
    state = StreamFrames()
    got, jobs = [], []
    for s in range(0, len(w16) - window + 1, hop):
        job = WindowJob(state, s, w16[s : s + window], w48[3 * s : 3 * (s + window)])
        got.append(float(scorer.score_windows([job]).raw_mos[0]))
        jobs.append(job)
    return got, jobs
