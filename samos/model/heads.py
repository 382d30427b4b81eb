"""Trainable heads: the SSL-Layer-MOS conv head, the DNSMOS-Pro spectrogram encoder, the Gaussian heads.

All of them accept any number of frames: a fixed-length flatten (the paper's, 10 s crops only) is
replaced by global pooling over time, and inputs shorter than a head's receptive field are
repeat-padded (SSL head) or handled by padded convolutions (spectrogram encoder).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samos.audio import GRID48, N_BINS
from samos.config import FusionConfig, SpecConfig, SSLHeadConfig


class _ConvLNBlock(nn.Module):
    """Conv1d (no padding) -> LayerNorm over channels -> ReLU -> Dropout [-> MaxPool1d]; ``[B, C, T]``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dropout: float, pool: int | None) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel)
        self.norm = nn.LayerNorm(c_out)
        self.dropout = nn.Dropout(dropout)
        self.pool = nn.MaxPool1d(pool) if pool else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        x = self.dropout(F.relu(x))
        return self.pool(x) if self.pool is not None else x


class SSLLayerHead(nn.Module):
    """The SSL-Layer-MOS head on one SSL layer's frames, with global pooling.

    ``Conv1d(D -> c0, k) + LN + ReLU + Dropout``, then for each further channel count
    ``Conv1d + LN + ReLU + Dropout + MaxPool1d(pool)``; then mean and max over time, concatenated.
    ``forward(feats [B, frames, D]) -> [B, out_dim]`` with ``out_dim = 2 * channels[-1]``.

    Deviations from the paper (documented in docs/MODEL.md): LayerNorm normalises over channels per
    frame (the paper's LayerNorm spans (channels, time) of a fixed 10 s crop); global mean+max
    pooling replaces the flatten; inputs shorter than :attr:`min_frames` are repeated in time
    (as training repeat-crops short clips) up to :attr:`min_frames`.
    """

    def __init__(self, in_dim: int, cfg: SSLHeadConfig) -> None:
        super().__init__()
        ch = cfg.channels
        blocks = [_ConvLNBlock(in_dim, ch[0], cfg.kernel, cfg.dropout, None)]
        blocks += [
            _ConvLNBlock(a, b, cfg.kernel, cfg.dropout, cfg.pool)
            for a, b in zip(ch[:-1], ch[1:], strict=True)
        ]
        self.blocks = nn.Sequential(*blocks)
        self.in_dim = in_dim
        self.out_dim = 2 * ch[-1]
        n = 1  # frames needed after the last block, walked back through the stack
        for block in reversed(blocks):
            if block.pool is not None:
                n *= cfg.pool
            n += cfg.kernel - 1
        self.min_frames = n

    def forward(self, feats: Tensor) -> Tensor:
        x = feats.transpose(1, 2)  # [B, D, frames]
        frames = x.shape[-1]
        # Repeat short inputs in time until they cover the receptive field (frame i <- i mod frames);
        # the identity for inputs already long enough. Shape arithmetic only: exports with a dynamic axis.
        index = torch.arange(torch.sym_max(frames, self.min_frames), device=x.device)
        index = index - torch.div(index, frames, rounding_mode="floor") * frames  # `%` fails ONNX conversion
        x = x.index_select(-1, index)
        x = self.blocks(x)
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1)


def time_pool(frames: Tensor, how: str) -> Tensor:
    """``[B, frames, D] -> [B, D]`` (``max``) or ``[B, 2 D]`` (``meanmax``: mean and max concatenated)."""
    if how == "meanmax":
        return torch.cat([frames.mean(dim=1), frames.amax(dim=1)], dim=-1)
    return frames.amax(dim=1)


class SpectrogramEncoder(nn.Module):
    """The DNSMOS Pro encoder on a log spectrogram.

    Per channel count: ``Conv2d(3x3, padding 1) + BatchNorm + ReLU``, ``MaxPool2d(3)`` after conv
    number ``pool_after``, Dropout on the first ``dropout_layers``; then a max over frequency (in
    ``bands`` equal bands; 1 = DNSMOS Pro's global max) and a pool over time (``max``, or ``meanmax``).
    ``forward(logspec [B, 161, frames]) -> [B, out_dim]``, ``out_dim = channels[-1] * bands`` (x2 for
    ``meanmax``). The map is laid out ``[B, 1, frames, bins]`` as in the reference code. Needs
    ``frames >= 3`` (pool), i.e. at least 320 samples at 48 kHz; :attr:`min_frames` says so.
    """

    def __init__(self, cfg: SpecConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = 1
        pooled = 0 < cfg.pool_after <= len(cfg.channels)
        for i, ch in enumerate(cfg.channels):
            layers += [nn.Conv2d(prev, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU()]
            if i + 1 == cfg.pool_after:
                layers.append(nn.MaxPool2d(3))
            if i < cfg.dropout_layers:
                layers.append(nn.Dropout(cfg.dropout))
            prev = ch
        self.encoder = nn.Sequential(*layers)
        bins = N_BINS // 3 if pooled else N_BINS  # >= 53: every band (at most 16) holds bins
        # Band b covers bins [edges[b], edges[b + 1]) of the conv map (fixed ints: exports as slices).
        self.band_edges = [round(b * bins / cfg.bands) for b in range(cfg.bands + 1)]
        self.time_pool = cfg.time_pool
        self.frame_dim = cfg.channels[-1] * cfg.bands
        self.out_dim = self.frame_dim * (2 if cfg.time_pool == "meanmax" else 1)
        self.min_frames = 3 if pooled else 1
        self.n_bins = N_BINS

    def frames(self, logspec: Tensor) -> Tensor:
        """Per-frame features ``[B, frames', C * bands]``: the conv stack (each output frame sees a few
        input frames), then the max over frequency per band. ``frames' = frames // 3`` with the max-pool."""
        x = self.encoder(logspec.transpose(1, 2).unsqueeze(1))  # [B, C, frames', bins']
        if len(self.band_edges) == 2:
            return x.amax(dim=3).transpose(1, 2)
        e = self.band_edges
        bands = [x[..., a:b].amax(dim=3) for a, b in zip(e[:-1], e[1:], strict=True)]
        return torch.cat(bands, dim=1).transpose(1, 2)

    def pool(self, frames: Tensor) -> Tensor:
        """Pool over time: ``[B, frames', D] -> [B, out_dim]`` (max, or mean and max concatenated)."""
        return time_pool(frames, self.time_pool)

    def forward(self, logspec: Tensor) -> Tensor:
        return self.pool(self.frames(logspec))


class SpectrogramConv1dEncoder(nn.Module):
    """The compact student's encoder: a 1-D conv stack over time on the log spectrogram.

    ``Conv1d(bins -> channels[0], kernel k, stride s)`` with ``s = 480 // hop`` and ``k = max(s, 2)``
    (a learned filterbank that also takes the STFT's frames to the 10 ms grid: with the paper's
    320 / 160 STFT, kernel 3 and stride 3, as DNSMOS Pro's max-pool does), then per further channel
    count a block ``Conv1d(kernel, dilation 2^i, zero "same" padding) + LayerNorm over channels +
    ReLU + Dropout``, with a residual when the width is unchanged; the first conv is followed by
    LayerNorm + ReLU too. ``frames(logspec [B, bins, s * n + 1]) -> [B, n, channels[-1]]``; ``pool``
    over time as :class:`SpectrogramEncoder`. Every layer is convolutional in time, so the model
    splits into the incremental pair like the others.
    """

    def __init__(self, cfg: SpecConfig) -> None:
        super().__init__()
        ch = cfg.channels
        stride = GRID48 // cfg.hop
        kernel = max(stride, 2)
        self.n_bins = cfg.n_fft // 2 + 1
        self.proj = nn.Conv1d(self.n_bins, ch[0], kernel, stride=stride)
        self.proj_norm = nn.LayerNorm(ch[0])
        self.blocks = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i, (a, b) in enumerate(zip(ch[:-1], ch[1:], strict=True)):
            d = 2**i
            self.blocks.append(nn.Conv1d(a, b, cfg.kernel, dilation=d, padding=d * (cfg.kernel - 1) // 2))
            self.norms.append(nn.LayerNorm(b))
        self.dropout = nn.Dropout(cfg.dropout)
        self.time_pool = cfg.time_pool
        self.frame_dim = ch[-1]
        self.out_dim = self.frame_dim * (2 if cfg.time_pool == "meanmax" else 1)
        self.min_frames = kernel

    @staticmethod
    def _norm_relu(norm: nn.Module, x: Tensor) -> Tensor:
        return F.relu(norm(x.transpose(1, 2)).transpose(1, 2))

    def frames(self, logspec: Tensor) -> Tensor:
        """Per-frame features ``[B, n, channels[-1]]`` on the 10 ms grid (``s * n + 1`` STFT frames in)."""
        x = self._norm_relu(self.proj_norm, self.proj(logspec))
        for conv, norm in zip(self.blocks, self.norms, strict=True):
            y = self.dropout(self._norm_relu(norm, conv(x)))
            x = x + y if y.shape[1] == x.shape[1] else y
        return x.transpose(1, 2)

    def pool(self, frames: Tensor) -> Tensor:
        """Pool over time: ``[B, frames', D] -> [B, out_dim]`` (max, or mean and max concatenated)."""
        return time_pool(frames, self.time_pool)

    def forward(self, logspec: Tensor) -> Tensor:
        return self.pool(self.frames(logspec))


def build_spectrogram_encoder(cfg: SpecConfig) -> SpectrogramEncoder | SpectrogramConv1dEncoder:
    """The encoder ``cfg.encoder`` names."""
    return SpectrogramConv1dEncoder(cfg) if cfg.encoder == "conv1d" else SpectrogramEncoder(cfg)


def _mlp(in_dim: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    prev = in_dim
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, 1))
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """Two MLPs on the fused vector: the mean and the variance of the MOS.

    ``forward(x [B, in_dim]) -> (mean [B], var [B])`` in MOS units:
    ``mean = mos_center + mean_scale * mu(x)``, ``var = var_scale * softplus(v(x)) + eps``.
    """

    eps = 1e-6

    def __init__(self, in_dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.mu = _mlp(in_dim, cfg.hidden)
        self.var = _mlp(in_dim, cfg.hidden)
        self.mos_center = cfg.mos_center
        self.mean_scale = cfg.mean_scale
        self.var_scale = cfg.var_scale

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean = self.mos_center + self.mean_scale * self.mu(x).squeeze(-1)
        var = self.var_scale * F.softplus(self.var(x).squeeze(-1)) + self.eps
        return mean, var
