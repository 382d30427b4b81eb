"""SAMOS: the SA-SSL-MOS model (SSL-layer branch at 16 kHz + log-spectrogram branch at 48 kHz).

One code path for the three variants a :class:`~samos.config.ModelConfig` can describe: both
branches (SA-SSL-MOS), SSL only (SSL-Layer-MOS, ``spec.enabled = false``) and spectrogram only
(``ssl.family = "none"``).
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn

from samos.audio import RATE_RATIO, SSL_RATE
from samos.config import ModelConfig
from samos.model.frontend import LogSpectrogram
from samos.model.heads import (
    GaussianHead,
    SpectrogramConv1dEncoder,
    SpectrogramEncoder,
    SSLLayerHead,
    build_spectrogram_encoder,
)
from samos.model.ssl import SSLEncoder, build_ssl_encoder
from samos.model.teacher import TeacherHead


class ModelInputError(ValueError):
    """Inputs that do not fit the model (missing branch input, wrong rank, too short)."""


class SAMOS(nn.Module):
    """SA-SSL-MOS: ``forward(wave16 [B, T], wave48 [B, 3T]) -> (mean [B], var [B])`` in MOS units.

    * ``ssl_features(wave16) -> [B, frames, D]``: the frozen SSL part (run under ``no_grad`` when
      frozen; cache it during training).
    * ``forward_features(feats | None, wave48 | None) -> (mean, var)``: the trainable part.
    * ``forward(w16, w48) == forward_features(ssl_features(w16), w48)``.

    * Incremental split (streaming): ``frame_features(g * w16, w48)`` (convolutional in time, 10 ms
      frames) and ``window_head(*frames)`` (the rest); ``forward == window_head(frame_features(...))``
      at ``g = 1 / peak``. Both end in :meth:`_fuse`: put head changes there and both paths (and the
      exported pair) follow.

    A branch that is disabled ignores (and does not need) its input: pass ``None``.
    ``ssl_encoder`` overrides building the encoder from ``cfg.ssl`` (checkpoint loading uses it).
    The graph has no Python branching on tensor values, so it exports with dynamic batch and time.
    """

    def __init__(self, cfg: ModelConfig, *, ssl_encoder: SSLEncoder | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        fused = 0
        self.ssl: SSLEncoder | None = None
        self.ssl_head: SSLLayerHead | None = None
        if cfg.ssl.enabled:
            self.ssl = ssl_encoder if ssl_encoder is not None else build_ssl_encoder(cfg.ssl)
            self.ssl_head = SSLLayerHead(self.ssl.dim, cfg.ssl_head)
            fused += self.ssl_head.out_dim
        self.spectrogram: LogSpectrogram | None = None
        self.spec_encoder: SpectrogramEncoder | SpectrogramConv1dEncoder | None = None
        if cfg.spec.enabled:
            self.spectrogram = LogSpectrogram(cfg.spec.n_fft, cfg.spec.hop)
            self.spec_encoder = build_spectrogram_encoder(cfg.spec)
            fused += self.spec_encoder.out_dim
        self.head = GaussianHead(fused, cfg.fusion)
        self.teacher: TeacherHead | None = None
        if cfg.fusion.anchor == "teacher":
            # Weights from the distillmos package, or (rebuilding a checkpoint) from its state dict.
            self.teacher = TeacherHead(load_weights=ssl_encoder is None)
            # Start as the teacher itself: the correction is zero until training moves it.
            nn.init.zeros_(self.head.mu[-1].weight)
            nn.init.zeros_(self.head.mu[-1].bias)

    # ------------------------------------------------------------------------------------ info
    @property
    def ssl_frozen(self) -> bool:
        return self.ssl is not None and self.ssl.frozen

    @property
    def min_samples(self) -> int:
        """Shortest input in 16 kHz samples (``wave48`` then has 3x as many) every branch accepts."""
        n = 1
        if self.ssl is not None:
            n = max(n, self.ssl.min_samples)
        if self.spec_encoder is not None:
            n = max(n, -(-self._min_wave48 // RATE_RATIO))
        return n

    @property
    def _min_wave48(self) -> int:
        """Shortest ``wave48`` (samples) the spectrogram encoder accepts: T48 // hop + 1 >= min_frames."""
        assert self.spec_encoder is not None
        return (self.spec_encoder.min_frames - 1) * self.cfg.spec.hop

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs this model reads, in ``forward``'s order: ("wave16", "wave48") or one of them."""
        names = ("wave16",) if self.ssl is not None else ()
        return names + (("wave48",) if self.spec_encoder is not None else ())

    @property
    def frame_names(self) -> tuple[str, ...]:
        """What :meth:`frame_features` returns, in order: ("ssl_frames", "spec_frames") or one of them."""
        names = ("ssl_frames",) if self.ssl is not None else ()
        return names + (("spec_frames",) if self.spec_encoder is not None else ())

    @property
    def min_seconds(self) -> float:
        return self.min_samples / SSL_RATE

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters an optimiser should update (everything but a frozen SSL encoder)."""
        return [p for p in self.parameters() if p.requires_grad]

    # --------------------------------------------------------------------------------- forward
    def ssl_features(self, wave16: Tensor | None) -> Tensor:
        """Frozen-part output ``[B, frames, D]`` for 16 kHz audio ``[B, T]`` (float32, [-1, 1])."""
        if self.ssl is None:
            raise ModelInputError("this model has no SSL branch (ssl.family is 'none')")
        if wave16 is None:
            raise ModelInputError("this model has an SSL branch: pass wave16 [batch, T]")
        self._check_wave(wave16, "wave16", self.ssl.min_samples)
        with torch.no_grad() if self.ssl.frozen else nullcontext():
            return self.ssl(wave16)

    def forward_features(self, feats: Tensor | None, wave48: Tensor | None) -> tuple[Tensor, Tensor]:
        """Trainable part: SSL frames ``[B, frames, D]`` and/or 48 kHz ``[B, 3T]`` -> (mean [B], var [B])."""
        if self.ssl_head is not None:
            if feats is None:
                raise ModelInputError(
                    "this model has an SSL branch: pass its features (ssl_features(wave16))"
                )
            if feats.dim() != 3 or feats.shape[-1] != self.ssl_head.in_dim:
                raise ModelInputError(
                    f"feats must be [batch, frames, {self.ssl_head.in_dim}], got shape {tuple(feats.shape)}"
                )
        if self.spec_encoder is not None and self.spectrogram is not None:
            if wave48 is None:
                raise ModelInputError("this model has a spectrogram branch: pass wave48 [batch, 3*T]")
            self._check_wave(wave48, "wave48", self._min_wave48)
            if feats is not None and isinstance(feats.shape[0], int) and feats.shape[0] != wave48.shape[0]:
                raise ModelInputError(
                    f"batch sizes differ: {feats.shape[0]} (wave16) vs {wave48.shape[0]} (wave48)"
                )
            spec = self.spec_encoder.frames(self.spectrogram(wave48))
        else:
            spec = None
        return self._fuse(feats, spec)

    def _fuse(self, feats: Tensor | None, spec_frames: Tensor | None) -> tuple[Tensor, Tensor]:
        """The heads: encoder output ``[B, frames, D]`` and spectrogram frames ``[B, frames', C]``."""
        parts: list[Tensor] = []
        if self.ssl_head is not None and feats is not None:
            parts.append(self.ssl_head(feats))
        if self.spec_encoder is not None and spec_frames is not None:
            parts.append(self.spec_encoder.pool(spec_frames))
        fused = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        mean, var = self.head(fused)
        if self.teacher is not None and feats is not None:
            bound = self.cfg.fusion.correction_bound
            mean = self.teacher(feats) + bound * torch.tanh((mean - self.cfg.fusion.mos_center) / bound)
        return mean, var

    # ----------------------------------------------------------------------- incremental split
    @property
    def incremental(self) -> bool:
        """Whether the model splits into :meth:`frame_features` and :meth:`window_head`."""
        return self.ssl is None or bool(getattr(self.ssl, "incremental", False))

    def frame_features(self, wave16: Tensor | None, wave48: Tensor | None) -> tuple[Tensor, ...]:
        """The part that is convolutional in time: per-frame features on one 10 ms grid.

        ``wave16 [B, T]`` (already scaled by the caller's gain: NO per-input peak normalisation) and
        ``wave48 [B, 3T]`` -> ``(ssl [B, T // 160, D], spec [B, T // 160, C])`` for the branches the
        model has, in that order (for T a multiple of 160). Frame ``i`` depends on the audio around
        ``160 i`` only, except the first and last few, which see the input's edges; so frames computed
        from overlapping pieces of a stream can be reused by every window on the 10 ms grid.
        ``window_head(*frame_features(g * w16, w48)) == forward(w16, w48)`` for ``g = 1 / peak(w16)``.
        """
        out = [self.ssl_frames(wave16)] if self.ssl is not None else []
        if self.spec_encoder is not None and self.spectrogram is not None:
            if wave48 is None:
                raise ModelInputError("this model has a spectrogram branch: pass wave48 [batch, 3*T]")
            out.append(self.spec_encoder.frames(self.spectrogram(wave48)))
        return tuple(out)

    def ssl_frames(self, wave16: Tensor | None) -> Tensor:
        """The SSL branch's part of :meth:`frame_features`: ``[B, T // 160, D]`` for ``wave16 [B, T]``
        at the caller's gain. Raises ModelInputError when the encoder has no incremental split."""
        if not self.incremental:
            raise ModelInputError(
                f"the {self.cfg.ssl.family} encoder normalises whole inputs: no incremental split"
            )
        if self.ssl is None:
            raise ModelInputError("this model has no SSL branch (ssl.family is 'none')")
        if wave16 is None:
            raise ModelInputError("this model has an SSL branch: pass wave16 [batch, T]")
        return self.ssl.frames(wave16)  # type: ignore[operator]

    def window_head(self, *frames: Tensor) -> tuple[Tensor, Tensor]:
        """The whole-window part on :meth:`frame_features`' output: ``(mean [B], var [B])``.

        The SSL frames are taken every other one (20 ms) from the first, then positions, transformer
        and heads; the spectrogram frames are pooled over time.
        """
        it = iter(frames)
        feats = None
        if self.ssl is not None:
            feats = self.ssl.context(next(it)[:, ::2])  # type: ignore[operator]
        spec = next(it) if self.spec_encoder is not None else None
        return self._fuse(feats, spec)

    def forward(self, wave16: Tensor | None = None, wave48: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(mean [B], var [B])`` MOS for 16 kHz ``wave16 [B, T]`` and 48 kHz ``wave48 [B, 3T]``."""
        feats = self.ssl_features(wave16) if self.ssl is not None else None
        return self.forward_features(feats, wave48)

    def _check_wave(self, wave: Tensor, name: str, min_samples: int) -> None:
        if wave.dim() != 2:
            raise ModelInputError(f"{name} must be [batch, samples], got shape {tuple(wave.shape)}")
        dtype = self.head.mu[0].weight.dtype
        if wave.dtype != dtype:
            raise ModelInputError(f"{name} is {wave.dtype}; this model takes {dtype} waveforms in [-1, 1]")
        n = wave.shape[-1]
        # Only checked eagerly: under export the length is symbolic (not an int) and no guard is made.
        if isinstance(n, int) and n < min_samples:
            raise ModelInputError(f"{name} has {n} samples; this model needs at least {min_samples}")
