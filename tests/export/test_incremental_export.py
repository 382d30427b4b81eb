"""`samos export --incremental`: the pair from the SAMOS split, its measured edges, the runtime using it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from export_helpers import stream_windows, tiny_distill_model, tiny_model

from samos.cli import main
from samos.config import FusionConfig, ModelConfig, SpecConfig, SSLConfig
from samos.export.incremental import measure_geometry
from samos.export.onnx_export import ExportError
from samos.model import SAMOS, load_checkpoint, save_checkpoint
from samos.runtime import Scorer
from samos.runtime.incremental import FrameGeometry, pair_paths


@pytest.fixture(scope="module")
def exported(module_tmp: Path) -> Path:
    ckpt = save_checkpoint(
        module_tmp / "tiny.pt", tiny_distill_model(), metadata={"train": {"crop_seconds": 2.0}}
    )
    out = module_tmp / "m.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--incremental"]) == 0
    return out


def test_edges_are_measured_on_the_model() -> None:
    # distillmos: reflect-padded STFT + six 3-wide convs -> 7 frames each side; the spectrogram
    # branch's 4 are inside those
    assert measure_geometry(tiny_distill_model()) == FrameGeometry(160, 7, 7)
    # the paper's spectrogram encoder (pool after conv 2): 2 convs, the pool, 2 convs -> 3 pooled frames
    assert measure_geometry(tiny_model(ssl=False)) == FrameGeometry(160, 3, 3)
    with pytest.raises(ExportError, match="no incremental pair"):
        measure_geometry(tiny_model())  # wav2vec2 normalises whole inputs


def test_pair_matches_the_torch_split_and_streams_exactly(exported: Path, module_tmp: Path) -> None:
    frames, head = pair_paths(exported)
    assert frames.is_file() and head.is_file()
    scorer = Scorer(exported, providers=("cpu",), threads=1)
    assert scorer.pair is not None and scorer.pair.frame_names == ["ssl_frames", "spec_frames"]
    model, _ = load_checkpoint(module_tmp / "tiny.pt")
    rng = np.random.default_rng(0)
    t = np.arange(int(5.5 * 16000)) / 16000
    w16 = 0.3 * np.sin(2 * np.pi * 180 * t) * np.sin(2 * np.pi * 3 * t) ** 2 + 0.01 * rng.standard_normal(
        t.size
    )
    w16 = w16.astype(np.float32)
    w48 = np.repeat(w16, 3)  # any 48 kHz signal of 3T samples
    got, jobs = stream_windows(scorer, w16, w48, hop=4000)  # 2 s windows every 0.25 s
    want = []
    with torch.no_grad():
        for job in jobs:
            g = torch.from_numpy(job.wave16[None]) * job.state.gain
            want.append(
                float(model.window_head(*model.frame_features(g, torch.from_numpy(job.wave48[None])))[0][0])
            )
    assert len(got) == 15
    assert np.max(np.abs(np.array(got) - np.array(want))) < 1e-4


def test_from_onnx_and_cli_errors(exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--from-onnx", str(tmp_path / "none.onnx")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["export", "--from-onnx", str(exported), "--fp16"]) == 2
    assert "--fp16 need --checkpoint" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "--out is required" in capsys.readouterr().err
    out = tmp_path / "again.onnx"
    assert main(["export", "--from-onnx", str(exported), "--out", str(out)]) == 0
    assert all(p.is_file() for p in pair_paths(out)) and not out.exists()


@pytest.mark.parametrize(
    ("spec", "edges"),
    [
        # the compact student: 1-D convs over time, dilations 1, 2, 4 at kernel 5: 2 + 4 + 8 frames, and
        # on the left the stride-3 filterbank's first frame, which sees the STFT's zero padding
        (SpecConfig(encoder="conv1d", channels=(8, 8, 8, 6), kernel=5, time_pool="meanmax"), (15, 14)),
        # with a 20 ms STFT every 10 ms (kernel-2 filterbank): the padded STFT frame on either side
        (
            SpecConfig(
                encoder="conv1d", channels=(8, 8, 8, 6), kernel=5, time_pool="meanmax", n_fft=960, hop=480
            ),
            (15, 15),
        ),
        # the DNSMOS Pro layout pooled after conv 1, in 4 frequency bands: 1 frame before the pool + 3
        (SpecConfig(channels=(4, 6, 6, 8), pool_after=1, bands=4, time_pool="meanmax"), (4, 4)),
    ],
)
def test_spectrogram_only_layouts_stream_exactly(
    tmp_path: Path, spec: SpecConfig, edges: tuple[int, int]
) -> None:
    """Spectrogram-only models (the compact student's layout among them): the pair streams on the
    10 ms grid and equals the whole-window forward."""
    torch.manual_seed(1)
    cfg = ModelConfig(ssl=SSLConfig(family="none"), spec=spec, fusion=FusionConfig(hidden=(16, 8)))
    model = SAMOS(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    assert measure_geometry(model) == FrameGeometry(160, *edges)
    ckpt = save_checkpoint(tmp_path / "compact.pt", model, metadata={"train": {"crop_seconds": 2.0}})
    out = tmp_path / "compact.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--incremental"]) == 0
    scorer = Scorer(out, providers=("cpu",), threads=1)
    assert scorer.needs == ("wave48",)
    assert (scorer.info.n_fft, scorer.info.hop) == (spec.n_fft, spec.hop)
    assert scorer.pair is not None and scorer.pair.frame_names == ["spec_frames"]
    assert not scorer.pair.engine.wave16  # nothing is stacked or scaled for an input the graph ignores
    rng = np.random.default_rng(2)
    t = np.arange(int(4.5 * 48000)) / 48000
    w48 = (0.2 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 2 * t) ** 2).astype(np.float32)
    w48 += (0.02 * rng.standard_normal(t.size)).astype(np.float32)
    w16 = w48[::3].copy()
    got, jobs = stream_windows(scorer, w16, w48, hop=8000)  # 2 s windows every 0.5 s
    with torch.no_grad():
        want = [float(model(None, torch.from_numpy(job.wave48[None]))[0][0]) for job in jobs]
    assert len(got) == 6
    assert np.max(np.abs(np.array(got) - np.array(want))) < 1e-4
