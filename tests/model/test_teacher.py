"""TeacherHead: Distill-MOS's own head on the samos encoder, and the teacher-anchored SAMOS mean."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from samos.audio import load_audio, model_input
from samos.config import ConfigError, FusionConfig, ModelConfig, SSLConfig
from samos.model import SAMOS
from samos.model.checkpoint import load_checkpoint, save_checkpoint
from samos.model.ssl import DistillMOSEncoder
from samos.model.teacher import TeacherHead

DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"
SEGMENT = 122_880  # distillmos's own segment: 7.68 s at 16 kHz


def anchored(bound: float = 1.5) -> ModelConfig:
    return ModelConfig(fusion=FusionConfig(anchor="teacher", correction_bound=bound))


@pytest.fixture(scope="module")
def speech16() -> torch.Tensor:
    audio, sr = load_audio(DEMO)
    return torch.from_numpy(model_input(audio, sr).wave16[:SEGMENT])[None]


def test_teacher_head_reproduces_distillmos_on_its_own_segment(speech16: torch.Tensor) -> None:
    from distillmos import ConvTransformerSQAModel

    with contextlib.redirect_stdout(io.StringIO()):
        reference = ConvTransformerSQAModel().eval()
    encoder, head = DistillMOSEncoder(7).eval(), TeacherHead()
    with torch.no_grad():
        expected = float(reference(speech16)[0])
        got = float(head(encoder(speech16))[0])
    assert 1.0 < got < 5.0
    assert got == pytest.approx(expected, abs=1e-4)


def test_teacher_head_is_frozen_and_stays_in_eval_mode() -> None:
    head = TeacherHead()
    head.train()
    assert not head.training and not any(p.requires_grad for p in head.parameters())


def test_anchored_model_starts_as_the_teacher(speech16: torch.Tensor) -> None:
    model = SAMOS(anchored()).eval()
    wave48 = torch.nn.functional.interpolate(speech16[None], scale_factor=3)[0]
    with torch.no_grad():
        feats = model.ssl_features(speech16)
        mean, var = model.forward_features(feats, wave48)
        assert model.teacher is not None
        assert float(mean[0]) == pytest.approx(float(model.teacher(feats)[0]), abs=1e-6)
    assert float(var[0]) > 0
    assert not any(p.requires_grad for p in model.teacher.parameters())
    assert all(not n.startswith("teacher.") for n, p in model.named_parameters() if p.requires_grad)


def test_correction_is_bounded(speech16: torch.Tensor) -> None:
    model = SAMOS(anchored(bound=0.5)).eval()
    wave48 = torch.nn.functional.interpolate(speech16[None], scale_factor=3)[0]
    with torch.no_grad():
        model.head.mu[-1].bias.fill_(100.0)
        feats = model.ssl_features(speech16)
        mean, _ = model.forward_features(feats, wave48)
        assert model.teacher is not None
        assert float(mean[0] - model.teacher(feats)[0]) == pytest.approx(0.5, abs=1e-4)


def test_anchored_checkpoint_round_trip(tmp_path: Path, speech16: torch.Tensor) -> None:
    model = SAMOS(anchored()).eval()
    with torch.no_grad():
        model.head.mu[-1].bias.fill_(0.1)
    wave48 = torch.nn.functional.interpolate(speech16[None], scale_factor=3)[0]
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model))
    with torch.no_grad():
        assert torch.allclose(model(speech16, wave48)[0], loaded(speech16, wave48)[0], atol=1e-6)


@pytest.mark.parametrize(
    "ssl",
    [
        SSLConfig(family="distillmos", layer=5),
        SSLConfig(family="distillmos", layer=7, layer_mix="mean"),
        SSLConfig(family="none"),
    ],
    ids=["layer5", "mean-of-layers", "no-ssl"],
)
def test_anchor_needs_the_teachers_last_layer(ssl: SSLConfig) -> None:
    with pytest.raises(ConfigError, match="anchor 'teacher'"):
        ModelConfig(ssl=ssl, fusion=FusionConfig(anchor="teacher"))


def test_correction_bound_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="correction_bound"):
        FusionConfig(anchor="teacher", correction_bound=0.0)
