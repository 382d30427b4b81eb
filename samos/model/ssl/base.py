"""The SSL encoder interface and its error (see :mod:`samos.model.ssl`)."""

from __future__ import annotations

import abc
from typing import Any, get_args

from torch import nn

from samos.config import LayerMix


class SSLWeightsError(ValueError):
    """SSL encoder weights that cannot be found or do not fit the requested architecture."""


LAYER_MIXES: tuple[str, ...] = get_args(LayerMix)


def check_layer_mix(layer_mix: str) -> str:
    """``layer_mix`` if it is one of :data:`LAYER_MIXES`, else SSLWeightsError."""
    if layer_mix not in LAYER_MIXES:
        raise SSLWeightsError(f"ssl.layer_mix must be one of {', '.join(LAYER_MIXES)}, got {layer_mix!r}")
    return layer_mix


# ------------------------------------------------------------------------------------------ base
class SSLEncoder(nn.Module, abc.ABC):
    """Base class: a (by default frozen) encoder of 16 kHz audio.

    ``forward(wave16 [B, T] float32 in [-1, 1]) -> [B, frames, dim]``.
    """

    dim: int
    layer: int
    layer_mix: str = "last"
    """``last``: the output of transformer layer ``layer``; ``mean``: the mean over layers 1..``layer``."""
    frame_hop: int
    """16 kHz samples per output frame (320 = 20 ms for every encoder here)."""
    min_samples: int
    """Shortest input (16 kHz samples) that yields at least one frame."""
    incremental: bool = False
    """The encoder splits into ``frames(wave16)`` (convolutional in time, 10 ms frames, no per-input
    normalisation) and ``context(frames[:, ::2])`` (the whole-window part): see SAMOS.frame_features."""

    def __init__(self, *, frozen: bool) -> None:
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> None:
        """No gradients, eval mode (and kept there by :meth:`train`)."""
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> SSLEncoder:
        # A frozen encoder keeps eval mode (dropout off, BatchNorm on running statistics).
        return super().train(False if self.frozen else mode)

    @abc.abstractmethod
    def num_frames(self, samples: int) -> int:
        """Output frames for an input of ``samples`` 16 kHz samples."""

    def _described(self, desc: dict[str, Any]) -> dict[str, Any]:
        """``desc`` plus ``layer_mix`` when it is not ``last`` (so that older checkpoints and feature
        caches keep their description)."""
        return desc if self.layer_mix == "last" else {**desc, "layer_mix": self.layer_mix}

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this encoder's architecture without its weight source."""
