"""Spectral front ends as convolutions with a fixed DFT basis.

``torch.stft`` exports to the ONNX ``STFT`` op, which has no CUDA kernel in onnxruntime; a ``Conv1d``
whose kernels are the windowed real and imaginary DFT rows computes the same thing and exports to a
plain ``Conv`` that every execution provider runs.

Conventions: waveforms are float32 ``[B, T]``; spectra are ``[B, bins, frames]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samos.audio import HOP_LENGTH, LOG_MAG_CLIP, N_FFT, WIN_LENGTH


def dft_basis(n_fft: int, win_length: int) -> Tensor:
    """The windowed one-sided DFT as Conv1d weights ``[2 * (n_fft // 2 + 1), 1, n_fft]``.

    Rows ``0 .. bins-1`` give the real part, rows ``bins ..`` the imaginary part of
    ``sum_n w[n] x[n] exp(-2 pi i k n / n_fft)``, with ``w`` the periodic Hann window of
    ``win_length`` centred in ``n_fft`` (as ``torch.stft`` pads a shorter window).
    """
    if not 0 < win_length <= n_fft:
        raise ValueError(f"win_length must be in 1..n_fft ({n_fft}), got {win_length}")
    window = torch.hann_window(win_length, periodic=True, dtype=torch.float64)
    left = (n_fft - win_length) // 2
    window = F.pad(window, (left, n_fft - win_length - left))
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    angle = 2.0 * math.pi * ((k * n) % n_fft) / n_fft
    real = torch.cos(angle) * window
    imag = -torch.sin(angle) * window
    return torch.cat([real, imag], dim=0).unsqueeze(1).to(torch.float32)


class DFTConv(nn.Module):
    """Framewise one-sided DFT of an already padded waveform, as one strided Conv1d.

    ``forward(x [B, T]) -> (real, imag)``, each ``[B, n_fft // 2 + 1, frames]`` with
    ``frames = (T - n_fft) // hop + 1`` (no padding here: the caller pads).
    """

    basis: Tensor

    def __init__(
        self, n_fft: int = N_FFT, win_length: int = WIN_LENGTH, hop_length: int = HOP_LENGTH
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.n_bins = n_fft // 2 + 1
        # A fixed buffer, not a parameter; not saved in state dicts (it is rebuilt from the geometry).
        self.register_buffer("basis", dft_basis(n_fft, win_length), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.is_cuda and torch.backends.cudnn.allow_tf32 and not torch.compiler.is_exporting():
            # cuDNN runs fp32 convolutions in TF32 by default (10-bit mantissa): that buries every bin
            # more than ~60 dB below the frame's peak (e.g. the empty band of up-sampled narrowband
            # audio) in rounding noise, unlike CPU/ONNX. This tiny conv runs in full fp32 instead.
            torch.backends.cudnn.allow_tf32 = False
            try:
                spec = F.conv1d(x.unsqueeze(1), self.basis, stride=self.hop_length)
            finally:
                torch.backends.cudnn.allow_tf32 = True
        else:
            spec = F.conv1d(x.unsqueeze(1), self.basis, stride=self.hop_length)
        return spec[:, : self.n_bins], spec[:, self.n_bins :]


class LogSpectrogram(nn.Module):
    """log10 |STFT| of 48 kHz audio, as in the paper's reference code (librosa defaults).

    STFT of ``n_fft`` samples (periodic Hann window of the same length), hop ``hop``; by default the
    paper's 320 / 160 (6.7 ms / 3.3 ms). Centred frames: the waveform is zero-padded by ``n_fft // 2``
    samples on both sides (librosa ``center=True``, ``pad_mode="constant"``), so
    ``frames = T // hop + 1`` and frame ``t`` is centred on sample ``hop * t``. The magnitude is
    clipped to ``LOG_MAG_CLIP`` = [1e-7, 1e7] before log10.

    ``forward(wave48 [B, T]) -> [B, n_fft // 2 + 1, frames]`` (bins 0..24 kHz, log10 magnitude).
    Any ``T >= 0`` works (even an empty waveform gives one frame of the clip floor).
    """

    def __init__(self, n_fft: int = N_FFT, hop: int = HOP_LENGTH) -> None:
        super().__init__()
        self.dft = DFTConv(n_fft, n_fft, hop)
        self.pad = n_fft // 2
        self.hop = hop
        self.n_bins = n_fft // 2 + 1

    def forward(self, wave: Tensor) -> Tensor:
        x = F.pad(wave, (self.pad, self.pad))
        real, imag = self.dft(x)
        mag = torch.sqrt(real * real + imag * imag)
        return torch.log10(torch.clamp(mag, LOG_MAG_CLIP[0], LOG_MAG_CLIP[1]))

    def num_frames(self, samples: int) -> int:
        """Frames produced for ``samples`` input samples."""
        return samples // self.hop + 1
