"""SAMOSEnsemble: the mixture of its members, one spectrogram and one SSL encoder for all, and the
members it refuses."""

from __future__ import annotations

import pytest
import torch
from model_helpers import speechlike, tiny_arch

from samos.config import FusionConfig, ModelConfig, SpecConfig, SSLConfig, SSLHeadConfig
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


def _two_branch(seed: int, encoder: torch.nn.Module | None = None) -> SAMOS:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        ssl=SSLConfig(family="wav2vec2", arch=tiny_arch(1), layer=1),
        ssl_head=SSLHeadConfig(channels=(8, 8, 8)),
        spec=SpecConfig(channels=(4, 4, 8, 8)),
        fusion=FusionConfig(hidden=(8,)),
    )
    return SAMOS(cfg, ssl_encoder=encoder).eval()  # type: ignore[arg-type]


@torch.no_grad()
def test_members_with_one_frozen_ssl_encoder_share_it() -> None:
    a = _two_branch(1)
    b = _two_branch(2)
    b.ssl.load_state_dict(a.ssl.state_dict())  # type: ignore[union-attr]  # as the same pretrained weights
    ens = SAMOSEnsemble([a, b]).eval()
    assert ens.ssl is a.ssl and ens.input_names == ("wave16", "wave48")
    w16 = torch.cat([speechlike(1.5, seed=0), 0.2 * speechlike(1.5, seed=1)])
    w48 = w16.repeat_interleave(3, dim=1)
    mean, var = ens(w16, w48)
    (ma, va), (mb, vb) = a(w16, w48), b(w16, w48)
    assert torch.allclose(mean, (ma + mb) / 2, atol=1e-6)
    assert torch.allclose(var, (va + vb) / 2 + ((ma - mb) / 2) ** 2, rtol=1e-5)
    with pytest.raises(ValueError, match="normalises whole inputs"):  # wav2vec2: no incremental split
        ens.frame_features(w16, w48)


def test_members_must_be_one_architecture_with_one_encoder() -> None:
    with pytest.raises(EnsembleError, match="at least two members"):
        SAMOSEnsemble([_student(1)])
    with pytest.raises(EnsembleError, match="member 2 has another model config"):
        SAMOSEnsemble([_student(1), _student(2, channels=(8, 8, 8))])
    with pytest.raises(EnsembleError, match="member 2 has other SSL encoder weights"):
        SAMOSEnsemble([_two_branch(1), _two_branch(2)])
    tuned = _two_branch(1)
    tuned.ssl.frozen = False  # type: ignore[union-attr]
    with pytest.raises(EnsembleError, match="fine-tuned SSL encoder"):
        SAMOSEnsemble([tuned, _two_branch(1)])


def test_bad_input_is_refused_as_the_members_refuse_it() -> None:
    ens = SAMOSEnsemble([_student(1), _student(2)])
    with pytest.raises(ValueError, match="pass wave48"):
        ens(None, None)
    with pytest.raises(ValueError, match="at least"):
        ens(None, torch.zeros(1, 100))
    with pytest.raises(ValueError, match=r"\[batch, samples\]"):
        ens(None, torch.zeros(48_000))
