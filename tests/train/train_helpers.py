"""Shared test settings for the training tests: a tiny random-weight SAMOS model."""

from __future__ import annotations

from typing import Any

TINY_MODEL: dict[str, Any] = {
    "ssl": {
        "family": "wav2vec2",
        "layer": 1,
        "arch": {
            "extractor_conv_layer_config": [
                [8, 10, 5],
                [8, 3, 2],
                [8, 3, 2],
                [8, 3, 2],
                [8, 3, 2],
                [8, 2, 2],
                [8, 2, 2],
            ],
            "encoder_embed_dim": 16,
            "encoder_num_layers": 2,
            "encoder_num_heads": 2,
            "encoder_ff_interm_features": 32,
            "encoder_pos_conv_kernel": 16,
            "encoder_pos_conv_groups": 4,
        },
    },
    "ssl_head": {"channels": [8, 8, 8], "kernel": 3, "pool": 2, "dropout": 0.1},
    "spec": {"channels": [4, 4, 8, 8], "pool_after": 1, "dropout": 0.1},
    "fusion": {"hidden": [8, 8]},
}
