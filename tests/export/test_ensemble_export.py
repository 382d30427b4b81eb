"""`samos export --checkpoint A B`: a seed ensemble as one graph, its pair streaming exactly, rebuilt
from the file, and checkpoints that cannot be one ensemble refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import stream_windows, tiny_distill_model

from samos.cli import main
from samos.config import FusionConfig, ModelConfig, SpecConfig, SSLConfig
from samos.export.from_onnx import model_from_onnx
from samos.model import SAMOS, load_checkpoint, save_checkpoint
from samos.model.ensemble import SAMOSEnsemble
from samos.runtime import Scorer
from samos.runtime.incremental import pair_paths

CROP = {"train": {"crop_seconds": 2.0}}


def _student(seed: int, channels: tuple[int, ...] = (8, 8, 8, 6)) -> SAMOS:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        ssl=SSLConfig(family="none"),
        spec=SpecConfig(encoder="conv1d", channels=channels, kernel=5, time_pool="meanmax"),
        fusion=FusionConfig(hidden=(16, 8)),
    )
    model = SAMOS(cfg).eval()
    with torch.no_grad():  # trained-looking norms: members that differ in every weight
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


@pytest.fixture(scope="module")
def checkpoints(module_tmp: Path) -> list[Path]:
    return [save_checkpoint(module_tmp / f"seed{s}.pt", _student(s), metadata=CROP) for s in (1, 2)]


@pytest.fixture(scope="module")
def exported(module_tmp: Path, checkpoints: list[Path]) -> Path:
    out = module_tmp / "ens.onnx"
    args = ["export", "--checkpoint", *map(str, checkpoints), "--out", str(out), "--incremental", "--verify"]
    assert main(args) == 0
    return out


def _signal(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    t = np.arange(int(seconds * 48000)) / 48000
    w48 = (0.2 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 2 * t) ** 2).astype(np.float32)
    w48 += (0.02 * rng.standard_normal(t.size)).astype(np.float32)
    return w48[::3].copy(), w48


def test_one_graph_that_streams_exactly(exported: Path, checkpoints: list[Path]) -> None:
    members = [load_checkpoint(p)[0] for p in checkpoints]
    ens = SAMOSEnsemble(members).eval()
    scorer = Scorer(exported, providers=("cpu",), threads=1)
    assert scorer.info.members == 2 and scorer.needs == ("wave48",)
    assert scorer.pair is not None and scorer.pair.frame_names == ["spec_frames"]
    w16, w48 = _signal(4.5)
    got, jobs = stream_windows(scorer, w16, w48, hop=8000)  # 2 s windows every 0.5 s
    with torch.no_grad():
        wave = [torch.from_numpy(job.wave48[None]) for job in jobs]
        want = [float(ens(None, w)[0][0]) for w in wave]
        one = [float(members[0](None, w)[0][0]) for w in wave]
    assert len(got) == 6
    assert np.max(np.abs(np.array(got) - np.array(want))) < 1e-4
    assert np.max(np.abs(np.array(want) - np.array(one))) > 1e-3  # the mixture, not member 1


def test_rebuilt_from_the_file(exported: Path, tmp_path: Path) -> None:
    model, meta = model_from_onnx(exported)  # checks its own parity with the file
    assert isinstance(model, SAMOSEnsemble) and model.size == 2
    assert meta["samos.members"] == "2"
    out = tmp_path / "again.onnx"
    assert main(["export", "--from-onnx", str(exported), "--out", str(out)]) == 0
    assert all(p.is_file() for p in pair_paths(out))


def test_checkpoints_that_are_not_one_recipe(
    module_tmp: Path, checkpoints: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wider = save_checkpoint(tmp_path / "wider.pt", _student(3, channels=(8, 8, 8, 8)), metadata=CROP)
    longer = save_checkpoint(tmp_path / "longer.pt", _student(4), metadata={"train": {"crop_seconds": 4.0}})
    out = tmp_path / "x.onnx"
    assert main(["export", "--checkpoint", str(checkpoints[0]), str(wider), "--out", str(out)]) == 2
    assert "another model config" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(checkpoints[0]), str(longer), "--out", str(out)]) == 2
    assert "another crop" in capsys.readouterr().err
    assert not out.exists()


def test_members_sharing_the_distillmos_encoder(tmp_path: Path) -> None:
    """Two-branch members (as the default model): one SSL encoder for both, the pair streams exactly."""
    ckpts = [save_checkpoint(tmp_path / f"d{s}.pt", tiny_distill_model(s), metadata=CROP) for s in (1, 2)]
    out = tmp_path / "ens.onnx"
    args = ["export", "--checkpoint", *map(str, ckpts), "--out", str(out), "--incremental", "--verify"]
    assert main(args) == 0
    ens = SAMOSEnsemble([load_checkpoint(p)[0] for p in ckpts]).eval()
    scorer = Scorer(out, providers=("cpu",), threads=1)
    assert scorer.info.members == 2 and scorer.needs == ("wave16", "wave48")
    assert scorer.pair is not None and scorer.pair.frame_names == ["ssl_frames", "spec_frames"]
    w16, w48 = _signal(4.5)
    got, jobs = stream_windows(scorer, w16, w48, hop=8000)
    with torch.no_grad():
        want = [
            float(
                ens.window_head(
                    *ens.frame_features(
                        torch.from_numpy(job.wave16[None]) * job.state.gain,
                        torch.from_numpy(job.wave48[None]),
                    )
                )[0][0]
            )
            for job in jobs
        ]
    assert len(got) == 6
    assert np.max(np.abs(np.array(got) - np.array(want))) < 1e-4
    rebuilt, _ = model_from_onnx(out)  # checks its own parity with the file
    assert isinstance(rebuilt, SAMOSEnsemble) and rebuilt.ssl is not None
