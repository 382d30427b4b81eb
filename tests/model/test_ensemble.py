"""SAMOSEnsemble: the mixture of its members, one spectrogram for all, and the members it refuses."""

from __future__ import annotations

import pytest
import torch
from model_helpers import speechlike, tiny_arch

from samos.config import FusionConfig, ModelConfig, SpecConfig, SSLConfig
from samos.model import SAMOS
from samos.model.ensemble import EnsembleError, SAMOSEnsemble


def _student(seed: int, channels: tuple[int, ...] = (8, 8, 6)) -> SAMOS:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        ssl=SSLConfig(family="none"),
        spec=SpecConfig(encoder="conv1d", channels=channels, kernel=3, time_pool="meanmax"),
        fusion=FusionConfig(hidden=(8,)),
    )
    return SAMOS(cfg).eval()


@torch.no_grad()
def test_the_ensemble_is_the_mixture_of_its_members() -> None:
    members = [_student(s) for s in (1, 2, 3)]
    ens = SAMOSEnsemble(members).eval()
    w48 = torch.cat([speechlike(2.0, 48_000, seed=0), 0.1 * speechlike(2.0, 48_000, seed=1)])
    mean, var = ens(None, w48)
    outs = [m(None, w48) for m in members]
    means = torch.stack([o[0] for o in outs])
    variances = torch.stack([o[1] for o in outs])
    assert torch.allclose(mean, means.mean(0), atol=1e-6)
    # the members' own variances plus how far they disagree
    want = variances.mean(0) + means.var(0, unbiased=False)
    assert torch.allclose(var, want, rtol=1e-5)
    assert bool((var > variances.mean(0)).all())  # random members disagree
    # the incremental split: the members' frames side by side, each head on its own slice
    (frames,) = ens.frame_features(None, w48)
    assert frames.shape == (2, 200, 18)
    split_mean, split_var = ens.window_head(frames)
    assert torch.allclose(split_mean, mean, atol=1e-6) and torch.allclose(split_var, var, atol=1e-6)
    assert ens.input_names == ("wave48",) and ens.frame_names == ("spec_frames",)
    assert ens.min_samples == members[0].min_samples and ens.size == 3


def test_members_must_be_one_spectrogram_only_architecture() -> None:
    with pytest.raises(EnsembleError, match="at least two members"):
        SAMOSEnsemble([_student(1)])
    with pytest.raises(EnsembleError, match="member 2 has another model config"):
        SAMOSEnsemble([_student(1), _student(2, channels=(8, 8, 8))])
    cfg = ModelConfig(
        ssl=SSLConfig(family="wav2vec2", arch=tiny_arch(1), layer=1), spec=SpecConfig(channels=(4, 4, 8, 8))
    )
    with pytest.raises(EnsembleError, match="spectrogram-only members"):
        SAMOSEnsemble([SAMOS(cfg), SAMOS(cfg)])


def test_bad_input_is_refused_as_the_members_refuse_it() -> None:
    ens = SAMOSEnsemble([_student(1), _student(2)])
    with pytest.raises(ValueError, match="pass wave48"):
        ens(None, None)
    with pytest.raises(ValueError, match="at least"):
        ens(None, torch.zeros(1, 100))
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
        ens(None, torch.zeros(48_000))
