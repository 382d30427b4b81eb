"""The DFT-conv log spectrogram equals torch.stft's (centred, zero-padded, periodic Hann)."""

from __future__ import annotations

import pytest
import torch

from samos.audio import HOP_LENGTH, LOG_MAG_CLIP, N_BINS, N_FFT, WIN_LENGTH
from samos.model.frontend import DFTConv, LogSpectrogram, dft_basis


def reference_logspec(wave: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP_LENGTH) -> torch.Tensor:
    spec = torch.stft(
        wave.double(),
        n_fft=n_fft,
        hop_length=hop,
        win_length=n_fft,
        window=torch.hann_window(n_fft, periodic=True, dtype=torch.float64),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return torch.log10(spec.abs().clamp(*LOG_MAG_CLIP)).float()


@pytest.mark.parametrize("samples", [9_600, 48_000 + 77, 160, 1])
@pytest.mark.parametrize(("n_fft", "hop"), [(N_FFT, HOP_LENGTH), (960, 480)])
def test_log_spectrogram_matches_stft(samples: int, n_fft: int, hop: int) -> None:
    wave = torch.randn(3, samples) * 0.3
    spectrogram = LogSpectrogram(n_fft, hop)
    out = spectrogram(wave)
    ref = reference_logspec(wave, n_fft, hop)
    assert out.shape == (3, n_fft // 2 + 1, samples // hop + 1) == ref.shape
    assert spectrogram.num_frames(samples) == out.shape[-1]
    assert spectrogram.n_bins == (N_BINS if n_fft == N_FFT else 481)
    # float32 sums of n_fft products against float64: the weakest bins of a longer frame drift more
    assert (out - ref).abs().max().item() < (1e-4 if n_fft == N_FFT else 2e-3)


def test_log_spectrogram_clips_silence_to_floor() -> None:
    out = LogSpectrogram()(torch.zeros(1, 4_800))
    assert torch.allclose(out, torch.full_like(out, -7.0))


def test_dft_conv_equals_uncentred_stft() -> None:
    x = torch.randn(2, 3_200)
    real, imag = DFTConv()(x)
    ref = torch.stft(
        x, N_FFT, HOP_LENGTH, WIN_LENGTH, torch.hann_window(WIN_LENGTH), center=False, return_complex=True
    )
    assert real.shape == ref.real.shape == (2, N_BINS, (3_200 - N_FFT) // HOP_LENGTH + 1)
    assert (real - ref.real).abs().max().item() < 1e-4
    assert (imag - ref.imag).abs().max().item() < 1e-4


def test_dft_basis_rejects_bad_window() -> None:
    assert dft_basis(320, 320).shape == (2 * N_BINS, 1, 320)
    with pytest.raises(ValueError, match="win_length"):
        dft_basis(320, 400)


def test_basis_is_not_in_the_state_dict() -> None:
    assert LogSpectrogram().state_dict() == {}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_spectrogram_keeps_fp32_precision_in_empty_bands() -> None:
    """cuDNN's default TF32 convolutions would bury bins > ~60 dB below the peak in rounding noise."""
    t = torch.arange(48_000 * 2, dtype=torch.float64) / 48_000
    harmonics = torch.stack([torch.sin(2 * torch.pi * 150 * k * t) / k for k in range(1, 25)])
    x = (0.05 * harmonics.sum(0)).float().unsqueeze(0)  # nothing above 3.6 kHz
    ref = reference_logspec(x)
    assert torch.backends.cudnn.allow_tf32  # the default this guards against
    out = LogSpectrogram().cuda()(x.cuda()).cpu()
    assert torch.backends.cudnn.allow_tf32  # restored
    assert (out - ref)[:, 34:].abs().max().item() < 1e-2  # bins above 5 kHz
