"""SAMOS: the three variants from one code path, forward == forward_features(ssl_features), lengths."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from model_helpers import tiny_arch

from samos.config import ModelConfig, SpecConfig, SSLConfig
from samos.model import SAMOS, ModelInputError
from samos.model.ssl import DistillMOSEncoder


def two_branch() -> ModelConfig:
    return ModelConfig(ssl=SSLConfig(family="wav2vec2", arch=tiny_arch(3), layer=2))


def ssl_only() -> ModelConfig:
    return ModelConfig(
        ssl=SSLConfig(family="wavlm", arch=tiny_arch(3, wavlm=True), layer=3), spec=SpecConfig(enabled=False)
    )


def spec_only() -> ModelConfig:
    return ModelConfig(ssl=SSLConfig(family="none"))


def waves(batch: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(16_000 * seconds)
    return torch.randn(batch, n) * 0.1, torch.randn(batch, 3 * n) * 0.1


@pytest.mark.parametrize("make", [two_branch, ssl_only, spec_only])
def test_variants_share_one_code_path(make: type) -> None:
    cfg = make()
    model = SAMOS(cfg).eval()
    w16, w48 = waves(2, 1.0)
    mean, var = model(w16 if cfg.ssl.enabled else None, w48 if cfg.spec.enabled else None)
    assert mean.shape == var.shape == (2,)
    assert torch.isfinite(mean).all() and (var > 0).all()
    assert (model.ssl is not None) == cfg.ssl.enabled and (model.ssl_head is not None) == cfg.ssl.enabled
    assert (model.spec_encoder is not None) == cfg.spec.enabled
    assert model.input_names == tuple(
        name for name, on in (("wave16", cfg.ssl.enabled), ("wave48", cfg.spec.enabled)) if on
    )
    fused = (64 if cfg.ssl.enabled else 0) + (64 if cfg.spec.enabled else 0)
    assert model.head.mu[0].in_features == fused


@pytest.mark.parametrize("make", [two_branch, ssl_only])
def test_forward_equals_forward_features_of_ssl_features(make: type) -> None:
    model = SAMOS(make()).eval()
    w16, w48 = waves(2, 1.5)
    feats = model.ssl_features(w16)
    assert feats.shape == (2, model.ssl.num_frames(w16.shape[1]), model.ssl.dim)  # type: ignore[union-attr]
    assert not feats.requires_grad
    with torch.no_grad():
        a = model(w16, w48)
        b = model.forward_features(feats, w48)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_frozen_ssl_is_excluded_from_training() -> None:
    model = SAMOS(two_branch())
    model.train()
    assert not model.ssl.training  # type: ignore[union-attr]
    trainable = {id(p) for p in model.trainable_parameters()}
    assert not any(id(p) in trainable for p in model.ssl.parameters())  # type: ignore[union-attr]
    assert trainable == {id(p) for n, p in model.named_parameters() if not n.startswith("ssl.")}
    w16, w48 = waves(2, 1.0)
    mean, var = model(w16, w48)
    (mean.sum() + var.sum()).backward()
    assert all(p.grad is not None for p in model.trainable_parameters())


def test_unfrozen_ssl_trains() -> None:
    cfg = ModelConfig(ssl=SSLConfig(family="wav2vec2", arch=tiny_arch(2), layer=1, frozen=False))
    model = SAMOS(cfg)
    assert len(model.trainable_parameters()) == len(list(model.parameters()))
    mean, _ = model(*waves(1, 0.5))
    mean.sum().backward()
    assert model.ssl.layers[0].feed_forward.output_dense.weight.grad is not None  # type: ignore[union-attr, index]


@pytest.mark.parametrize("seconds", [0.2, 0.03, 20.0])
def test_short_and_long_inputs(seconds: float) -> None:
    model = SAMOS(two_branch()).eval()
    with torch.no_grad():
        mean, var = model(*waves(1, seconds))
    assert torch.isfinite(mean).all() and torch.isfinite(var).all()


def test_min_samples_is_enforced_with_a_clear_error() -> None:
    model = SAMOS(two_branch()).eval()
    assert model.min_samples == 400 and model.min_seconds == 0.025
    w16, w48 = waves(1, 399 / 16_000)
    with pytest.raises(ModelInputError, match="at least 400"):
        model(w16, w48)
    assert SAMOS(spec_only()).min_samples == 107


def test_batch_items_are_independent() -> None:
    model = SAMOS(two_branch()).eval()
    w16, w48 = waves(3, 0.8)
    w16[1] *= 5.0
    with torch.no_grad():
        batch = model(w16, w48)
        single = model(w16[1:2], w48[1:2])
    assert torch.allclose(batch[0][1:2], single[0], atol=1e-5)
    assert torch.allclose(batch[1][1:2], single[1], atol=1e-5)


def test_missing_or_malformed_inputs() -> None:
    model = SAMOS(two_branch()).eval()
    w16, w48 = waves(1, 0.5)
    with pytest.raises(ModelInputError, match="wave48"):
        model(w16, None)
    with pytest.raises(ModelInputError, match="wave16"):
        model(None, w48)
    with pytest.raises(ModelInputError, match=r"\[batch, samples\]"):
        model(w16[0], w48)
    with pytest.raises(ModelInputError, match="float64"):
        model(w16.double(), w48)
    with pytest.raises(ModelInputError, match="batch sizes differ"):
        model(w16, torch.cat([w48, w48]))
    with pytest.raises(ModelInputError, match=r"\[batch, frames, 48\]"):
        model.forward_features(torch.zeros(1, 60, 7), w48)
    with pytest.raises(ModelInputError, match="no SSL branch"):
        SAMOS(spec_only()).ssl_features(w16)


def test_default_config_is_distillmos_layer7_two_branch() -> None:
    model = SAMOS(ModelConfig()).eval()
    assert isinstance(model.ssl, DistillMOSEncoder) and model.ssl.layer == 7
    with torch.no_grad():
        mean, var = model(*waves(2, 1.0))
    assert mean.shape == (2,) and (var > 0).all()


def distill_two_branch() -> ModelConfig:
    return ModelConfig(ssl=SSLConfig(family="distillmos", layer=1), spec=SpecConfig(channels=(4, 4, 8, 8)))


@pytest.mark.parametrize(("seconds", "mix"), [(4.0, "last"), (1.37, "last"), (4.0, "mean")])
def test_window_head_of_frame_features_equals_forward(seconds: float, mix: str) -> None:
    torch.manual_seed(0)
    cfg = distill_two_branch()
    cfg = dataclasses.replace(cfg, ssl=dataclasses.replace(cfg.ssl, layer=3, layer_mix=mix))
    model = SAMOS(cfg).eval()
    w16, w48 = waves(2, seconds)
    w16[1] *= 0.05  # a quieter item: the gain is per item
    gain = 1.0 / (w16.abs().amax(dim=-1, keepdim=True) + 1e-8)
    with torch.no_grad():
        want = model(w16, w48)
        frames = model.frame_features(w16 * gain, w48)
        got = model.window_head(*frames)
    assert [f.shape[1] for f in frames] == [int(16_000 * seconds) // 160] * 2
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-5), (g, w)


def test_frame_features_refuse_whole_input_normalising_encoders() -> None:
    model = SAMOS(two_branch()).eval()
    assert not model.incremental
    with pytest.raises(ModelInputError, match="no incremental split"):
        model.frame_features(*waves(1, 1.0))
    assert SAMOS(spec_only()).incremental
