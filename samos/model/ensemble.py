"""A seed ensemble: K SAMOS models of one architecture scored as one model.

Members trained alike from different seeds disagree on audio they never heard (the compact student's
two seeds correlate at PCC 0.9 on vmc24t3); their mean is steadier than any one of them, and their
spread is a measure of that disagreement. The ensemble runs the front ends once: the 48 kHz log
spectrogram (a fixed DFT, most of a compact member's cost) and, for members with an SSL branch, the
frozen SSL encoder, which must then be the same in every member (the same weights). Each member's
trainable part (its SSL head, spectrogram encoder, fusion head) runs on them, and the output is the
mixture of the members' Gaussians:

    mean = mean_k(mean_k),    var = mean_k(var_k) + var_k(mean_k)

(the members' own variances plus their disagreement). It has SAMOS's interface (``forward``,
``frame_features`` / ``window_head``, ``input_names``, ``min_samples``, ...), so the exporter writes it,
and its incremental pair, as one graph: the pair's ``ssl_frames`` are the shared encoder's, its
``spec_frames`` the members' side by side on the channel axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from samos.config import ModelConfig, to_dict
from samos.model.samos_model import SAMOS, ModelInputError
from samos.model.ssl import SSLEncoder


class EnsembleError(ValueError):
    """Members that cannot form one ensemble (fewer than two, different architectures or encoders)."""


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


class SAMOSEnsemble(nn.Module):
    """``forward(wave16 [B, T], wave48 [B, 3T]) -> (mean [B], var [B])``: the mixture of ``members``'
    outputs. All members must share one model config; an SSL branch must be frozen and hold the same
    weights in every member."""

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
        encoder = members[0].ssl
        if encoder is not None:
            if not encoder.frozen:
                raise EnsembleError("members with a fine-tuned SSL encoder cannot share it: no ensemble")
            for i, m in enumerate(members[1:], start=2):
                if not _same_weights(encoder, m.ssl):  # type: ignore[arg-type]
                    raise EnsembleError(f"member {i} has other SSL encoder weights than member 1")
        self.members = nn.ModuleList(members)
        # The shared front ends (registered once more here: the state dict repeats their keys).
        self.ssl: SSLEncoder | None = encoder
        self.spectrogram = members[0].spectrogram  # a fixed DFT: the same in every member
        self._dims = [m.spec_encoder.frame_dim for m in members if m.spec_encoder is not None]

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
        return self.first.incremental

    # -------------------------------------------------------------------------------- forward
    def _spec_frames(self, wave48: Tensor | None) -> list[Tensor | None]:
        """Each member's spectrogram frames ``[B, n, C_k]`` (the spectrogram computed once), or Nones."""
        if self.spectrogram is None:
            return [None] * self.size
        if wave48 is None:
            raise ModelInputError("this model has a spectrogram branch: pass wave48 [batch, 3*T]")
        logspec = self.spectrogram(wave48)
        return [m.spec_encoder.frames(logspec) for m in self.members]  # type: ignore[union-attr]

    def _mix(self, feats: Tensor | None, spec: Sequence[Tensor | None]) -> tuple[Tensor, Tensor]:
        outs = [m._fuse(feats, s) for m, s in zip(self.members, spec, strict=True)]
        means = torch.stack([o[0] for o in outs])
        variances = torch.stack([o[1] for o in outs])
        mean = means.mean(dim=0)
        return mean, variances.mean(dim=0) + ((means - mean) ** 2).mean(dim=0)

    def frame_features(self, wave16: Tensor | None, wave48: Tensor | None) -> tuple[Tensor, ...]:
        """As :meth:`SAMOS.frame_features`: ``(ssl [B, n, D], spec [B, n, sum of the members' C])``
        for the branches the members have (``wave16`` at the caller's fixed gain)."""
        out = [self.first.ssl_frames(wave16)] if self.ssl is not None else []
        if self.spectrogram is not None:
            out.append(torch.cat(self._spec_frames(wave48), dim=-1))  # type: ignore[arg-type]
        return tuple(out)

    def window_head(self, *frames: Tensor) -> tuple[Tensor, Tensor]:
        """The shared encoder's context (once), then each member's heads on its slice of the
        spectrogram frames, mixed: ``(mean [B], var [B])``."""
        it = iter(frames)
        feats = self.ssl.context(next(it)[:, ::2]) if self.ssl is not None else None  # type: ignore[operator]
        if self.spectrogram is None:
            return self._mix(feats, [None] * self.size)
        return self._mix(feats, torch.split(next(it), self._dims, dim=-1))

    def forward(self, wave16: Tensor | None = None, wave48: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(mean [B], var [B])`` MOS for 16 kHz ``wave16 [B, T]`` and 48 kHz ``wave48 [B, 3T]``
        (either may be None when no member reads it)."""
        feats = self.first.ssl_features(wave16) if self.ssl is not None else None
        if wave48 is not None and self.spectrogram is not None:
            self.first._check_wave(wave48, "wave48", self.first._min_wave48)
        return self._mix(feats, self._spec_frames(wave48))


__all__ = ["EnsembleError", "SAMOSEnsemble"]
