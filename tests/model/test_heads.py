"""Heads: shapes, any length (short inputs padded by repetition), Gaussian outputs."""

from __future__ import annotations

import pytest
import torch

from samos.config import ConfigError, FusionConfig, SpecConfig, SSLHeadConfig
from samos.model.heads import (
    GaussianHead,
    SpectrogramConv1dEncoder,
    SpectrogramEncoder,
    SSLLayerHead,
    _ConvLNBlock,
    build_spectrogram_encoder,
)


def test_ssl_head_shapes_and_receptive_field() -> None:
    head = SSLLayerHead(48, SSLHeadConfig()).eval()
    # k=5 conv, k=5 conv + pool 5, k=5 conv + pool 5: 4 + 5 * (4 + 5 * 1) = 49 ... walked back exactly:
    assert head.min_frames == ((1 * 5 + 4) * 5 + 4) + 4
    assert head.out_dim == 64
    for frames in (1, 10, head.min_frames, 500):
        out = head(torch.randn(3, frames, 48))
        assert out.shape == (3, 64) and torch.isfinite(out).all()


def test_ssl_head_pads_short_inputs_by_repetition_only() -> None:
    head = SSLLayerHead(16, SSLHeadConfig(channels=(8, 4, 4))).eval()
    short = torch.randn(2, 10, 16)
    tiled = short.repeat(1, 6, 1)[:, : head.min_frames]
    assert torch.allclose(head(short), head(tiled))
    long = torch.randn(2, 300, 16)
    x = head.blocks(long.transpose(1, 2))
    assert torch.equal(head(long), torch.cat([x.mean(-1), x.amax(-1)], dim=-1))


def test_ssl_head_layernorm_is_per_frame() -> None:
    head = SSLLayerHead(8, SSLHeadConfig(channels=(4, 4), kernel=3, pool=2, dropout=0.0)).eval()
    blocks = [b for b in head.blocks if isinstance(b, _ConvLNBlock)]
    assert [b.norm.normalized_shape for b in blocks] == [(4,), (4,)]
    assert blocks[0].pool is None and blocks[1].pool is not None


def test_spectrogram_encoder_shapes() -> None:
    enc = SpectrogramEncoder(SpecConfig()).eval()
    for frames in (enc.min_frames, 61, 1001):
        out = enc(torch.randn(2, 161, frames))
        assert out.shape == (2, 64) and torch.isfinite(out).all()
    kinds = [type(m).__name__ for m in enc.encoder]
    assert kinds.count("Conv2d") == 4 and kinds.count("BatchNorm2d") == 4
    assert kinds.count("Dropout") == 3 and kinds.count("MaxPool2d") == 1
    assert kinds.index("MaxPool2d") > [i for i, k in enumerate(kinds) if k == "Conv2d"][1]


def test_spectrogram_encoder_is_a_global_max() -> None:
    enc = SpectrogramEncoder(SpecConfig(channels=(4, 4), dropout=0.0)).eval()
    x = torch.randn(1, 161, 90)
    ref = enc.encoder(x.transpose(1, 2).unsqueeze(1)).flatten(2).amax(-1)
    assert torch.equal(enc(x), ref)


def test_spectrogram_encoder_bands_and_meanmax() -> None:
    cfg = SpecConfig(channels=(4, 6), pool_after=1, dropout=0.0, bands=4, time_pool="meanmax")
    enc = SpectrogramEncoder(cfg).eval()
    assert enc.band_edges == [0, 13, 26, 40, 53]  # 161 bins // 3 after the max-pool
    assert enc.frame_dim == 24 and enc.out_dim == 48
    x = torch.randn(2, 161, 90)
    fmap = enc.encoder(x.transpose(1, 2).unsqueeze(1))  # [B, C, frames', bins']
    frames = enc.frames(x)
    assert frames.shape == (2, 30, 24)
    # band b of channel c is the max over that band's bins: a feature that fires high in the spectrum
    # stays apart from one that fires low
    for b, (lo, hi) in enumerate(zip(enc.band_edges[:-1], enc.band_edges[1:], strict=True)):
        assert torch.equal(frames[..., 6 * b : 6 * (b + 1)], fmap[..., lo:hi].amax(-1).transpose(1, 2))
    assert torch.equal(enc(x), torch.cat([frames.mean(1), frames.amax(1)], dim=-1))


def test_conv1d_encoder_shapes_and_residuals() -> None:
    cfg = SpecConfig(encoder="conv1d", channels=(8, 8, 6), kernel=3, dropout=0.0, time_pool="meanmax")
    enc = build_spectrogram_encoder(cfg).eval()
    assert isinstance(enc, SpectrogramConv1dEncoder) and enc.frame_dim == 6 and enc.out_dim == 12
    assert [c.dilation[0] for c in enc.blocks] == [1, 2]
    x = torch.randn(2, 161, 91)
    frames = enc.frames(x)
    assert frames.shape == (2, 30, 6)  # 91 frames at 300/s -> 30 on the 10 ms grid
    assert torch.equal(enc(x), torch.cat([frames.mean(1), frames.amax(1)], dim=-1))
    # the first block keeps the width: residual; the second changes it: none
    h = enc._norm_relu(enc.proj_norm, enc.proj(x))
    h1 = h + enc._norm_relu(enc.norms[0], enc.blocks[0](h))
    h2 = enc._norm_relu(enc.norms[1], enc.blocks[1](h1))
    assert torch.allclose(frames, h2.transpose(1, 2))
    assert isinstance(build_spectrogram_encoder(SpecConfig()), SpectrogramEncoder)


@pytest.mark.parametrize(("n_fft", "hop", "kernel"), [(960, 480, 2), (480, 240, 2), (320, 160, 3)])
def test_conv1d_encoder_takes_any_stft_to_the_10ms_grid(n_fft: int, hop: int, kernel: int) -> None:
    enc = build_spectrogram_encoder(SpecConfig(encoder="conv1d", channels=(8, 6), n_fft=n_fft, hop=hop))
    stride = 480 // hop
    assert enc.proj.in_channels == n_fft // 2 + 1 == enc.n_bins
    assert (enc.proj.kernel_size[0], enc.proj.stride[0], enc.min_frames) == (kernel, stride, kernel)
    n = 30  # 0.3 s of 48 kHz audio: 48000 * 0.3 // hop + 1 STFT frames
    assert enc.frames(torch.randn(2, n_fft // 2 + 1, stride * n + 1)).shape == (2, n, 6)


def test_spectrogram_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="bands"):
        SpecConfig(bands=0)
    with pytest.raises(ConfigError, match="time_pool"):
        SpecConfig(time_pool="mean")
    with pytest.raises(ConfigError, match="encoder"):
        SpecConfig(encoder="lstm")
    with pytest.raises(ConfigError, match="kernel"):
        SpecConfig(encoder="conv1d", kernel=4)
    with pytest.raises(ConfigError, match="divide 480"):
        SpecConfig(encoder="conv1d", n_fft=960, hop=400)
    with pytest.raises(ConfigError, match="n_fft be even"):
        SpecConfig(encoder="conv1d", n_fft=961, hop=480)
    with pytest.raises(ConfigError, match="n_fft be even"):
        SpecConfig(encoder="conv1d", n_fft=320, hop=480)
    with pytest.raises(ConfigError, match="dnsmos spectrogram encoder needs"):
        SpecConfig(n_fft=960, hop=480)


def test_gaussian_head_formula() -> None:
    cfg = FusionConfig(mos_center=3.0, mean_scale=2.0, var_scale=4.0)
    head = GaussianHead(10, cfg)
    with torch.no_grad():
        for mlp, bias in ((head.mu, 0.25), (head.var, -1.0)):
            last = mlp[-1]
            assert isinstance(last, torch.nn.Linear)
            last.weight.zero_()
            last.bias.fill_(bias)
    mean, var = head(torch.randn(5, 10))
    assert mean.shape == var.shape == (5,)
    assert torch.allclose(mean, torch.full((5,), 3.5))
    expected = 4.0 * torch.nn.functional.softplus(torch.tensor(-1.0)) + GaussianHead.eps
    assert torch.allclose(var, expected.expand(5))


def test_gaussian_head_variance_is_positive() -> None:
    head = GaussianHead(6, FusionConfig())
    _, var = head(torch.randn(64, 6) * 100)
    assert (var > 0).all()


@pytest.mark.parametrize("hidden", [(64, 32), (16,)])
def test_gaussian_head_hidden_layers(hidden: tuple[int, ...]) -> None:
    head = GaussianHead(6, FusionConfig(hidden=hidden))
    linears = [m for m in head.mu if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [*hidden, 1]
