"""A seed ensemble: K spectrogram-only SAMOS models of one architecture scored as one model.

Members trained alike from different seeds disagree on audio they never heard (the compact student's
two seeds correlate at PCC 0.9 on vmc24t3); their mean is steadier than any one of them, and their
spread is a measure of that disagreement. The ensemble computes the 48 kHz log spectrogram once (the
fixed DFT is most of a compact member's cost), runs each member's encoder and head on it and returns
the mixture of the members' Gaussians:

    mean = mean_k(mean_k),    var = mean_k(var_k) + var_k(mean_k)

(the members' own variances plus their disagreement). It has SAMOS's interface (``forward``,
``frame_features`` / ``window_head``, ``input_names``, ``min_samples``, ...), so the exporter writes it,
and its incremental pair, as one graph: the pair's ``spec_frames`` are the members' frames side by
side on the channel axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from samos.config import ModelConfig, to_dict
from samos.model.samos_model import SAMOS, ModelInputError


class EnsembleError(ValueError):
    """Members that cannot form one ensemble (fewer than two, different architectures, an SSL branch)."""


class SAMOSEnsemble(nn.Module):
    """``forward(None, wave48 [B, 3T]) -> (mean [B], var [B])``: the mixture of ``members``' outputs.

    All members must share one model config with the SSL branch off (``ssl.family: none``).
    """

    def __init__(self, members: Sequence[SAMOS]) -> None:
        super().__init__()
        if len(members) < 2:
            raise EnsembleError(f"an ensemble needs at least two members, got {len(members)}")
        first = to_dict(members[0].cfg)
        for i, m in enumerate(members[1:], start=2):
            if to_dict(m.cfg) != first:
                raise EnsembleError(
                    f"member {i} has another model config than member 1: not one architecture"
                )
        if members[0].ssl is not None or members[0].spectrogram is None:
            raise EnsembleError(
                "ensembles take spectrogram-only members (ssl.family: none); each SSL member would run "
                "its own encoder"
            )
        self.members = nn.ModuleList(members)
        self.spectrogram = members[0].spectrogram  # a fixed DFT: the same in every member
        self._dims = [m.spec_encoder.frame_dim for m in members]  # type: ignore[union-attr]

    @property
    def cfg(self) -> ModelConfig:
        """The members' (common) model config."""
        return self.first.cfg

    @property
    def first(self) -> SAMOS:
        return self.members[0]  # type: ignore[return-value]

    @property
    def size(self) -> int:
        return len(self.members)

    # --------------------------------------------------- the SAMOS interface the exporter reads
    @property
    def ssl(self) -> None:
        return None

    @property
    def input_names(self) -> tuple[str, ...]:
        return self.first.input_names

    @property
    def frame_names(self) -> tuple[str, ...]:
        return self.first.frame_names

    @property
    def min_samples(self) -> int:
        return self.first.min_samples

    @property
    def min_seconds(self) -> float:
        return self.first.min_seconds

    @property
    def incremental(self) -> bool:
        return True

    # -------------------------------------------------------------------------------- forward
    def frame_features(self, wave16: Tensor | None, wave48: Tensor | None) -> tuple[Tensor]:
        """``wave48 [B, 3T] -> (spec [B, T // 160, sum of the members' channels],)``; ``wave16`` unused."""
        if wave48 is None:
            raise ModelInputError("this model has a spectrogram branch: pass wave48 [batch, 3*T]")
        logspec = self.spectrogram(wave48)  # type: ignore[misc]
        return (torch.cat([m.spec_encoder.frames(logspec) for m in self.members], dim=-1),)  # type: ignore[union-attr]

    def window_head(self, *frames: Tensor) -> tuple[Tensor, Tensor]:
        """The members' heads on their slices of ``spec [B, n, C]``, mixed: ``(mean [B], var [B])``."""
        (spec,) = frames
        parts = torch.split(spec, self._dims, dim=-1)
        outs = [m.window_head(p) for m, p in zip(self.members, parts, strict=True)]
        means = torch.stack([o[0] for o in outs])
        variances = torch.stack([o[1] for o in outs])
        mean = means.mean(dim=0)
        return mean, variances.mean(dim=0) + ((means - mean) ** 2).mean(dim=0)

    def forward(self, wave16: Tensor | None = None, wave48: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(mean [B], var [B])`` MOS for 48 kHz ``wave48 [B, 3T]`` (``wave16`` is not read)."""
        if wave48 is None:
            raise ModelInputError("this model has a spectrogram branch: pass wave48 [batch, 3*T]")
        self.first._check_wave(wave48, "wave48", self.first._min_wave48)
        return self.window_head(*self.frame_features(None, wave48))


__all__ = ["EnsembleError", "SAMOSEnsemble"]
