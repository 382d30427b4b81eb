"""`samos export --int8`: the frames graph in static int8, calibrated on real speech, used on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
from export_helpers import stream_windows, tiny_distill_model

from samos.audio import load_audio
from samos.cli import main
from samos.export.quantize import QuantizeError, calibration_feeds, clips_from, quantised_nodes
from samos.model import save_checkpoint
from samos.runtime import Scorer
from samos.runtime.incremental import int8_frames_path, int8_head_path, pair_paths

DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"


@pytest.fixture(scope="module")
def speech(module_tmp: Path) -> Path:
    """Six 3 s clips of the bundled real speech, in a folder."""
    audio, sr = load_audio(DEMO)
    folder = module_tmp / "clips"
    folder.mkdir()
    for i in range(6):
        sf.write(folder / f"c{i}.wav", audio[(5 * i + 1) * sr : (5 * i + 4) * sr], sr)
    return folder


@pytest.fixture(scope="module")
def exported(module_tmp: Path, speech: Path) -> Path:
    ckpt = save_checkpoint(
        module_tmp / "tiny.pt", tiny_distill_model(), metadata={"train": {"crop_seconds": 2.0}}
    )
    out = module_tmp / "m.onnx"
    args = ["export", "--checkpoint", str(ckpt), "--out", str(out), "--incremental", "--int8", str(speech)]
    assert main(args + ["--int8-clips", "4", "--int8-head"]) == 0
    return out


def test_int8_pair_is_written_and_described(exported: Path) -> None:
    frames, head = pair_paths(exported)
    for fp32, int8 in ((frames, int8_frames_path(exported)), (head, int8_head_path(exported))):
        assert int8.name.endswith(".int8.onnx") and int8.is_file()
        model = onnx.load(str(int8))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["samos.precision"] == "int8"
        how = json.loads(meta["samos.int8"])
        assert how["calibration_clips"] == 4 and how["percentile"] == 99.99
        assert how["nodes"] == len(quantised_nodes(fp32, head=fp32 == head)) > 0
        assert (
            model.graph.node and [n.op_type for n in model.graph.node].count("QuantizeLinear") >= how["nodes"]
        )
        fp32_meta = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
        assert meta["samos.weights_sha256"] == fp32_meta["samos.weights_sha256"]
        assert meta["samos.incremental"] == fp32_meta["samos.incremental"]
    # frames: the learned convs (5 of the encoder CNN's 6, 4 of the spectrogram branch's) and the
    # per-frame projection; not the two DFT bases, and not the encoder CNN's first conv, which sees the
    # STFT on its linear scale (the spectrogram branch's first conv sees a log spectrogram)
    graph = onnx.load(str(frames)).graph
    ops = {n.name: n.op_type for n in graph.node}
    q = quantised_nodes(frames)
    assert sorted(ops[n] for n in q) == ["Conv"] * 9 + ["MatMul"]
    first_cnn = [n for n in graph.node if n.op_type == "Conv" and n.input[1].endswith("ssl.cnn.0.weight")]
    assert len(first_cnn) == 1 and first_cnn[0].name not in q
    # head: the transformer's weight matrices only (not attention's activation x activation products,
    # not the conv head or the Gaussian MLP)
    head_ops = onnx.load(str(head)).graph
    weights = {i.name for i in head_ops.initializer}
    q = set(quantised_nodes(head, head=True))
    assert q and all(n.op_type == "MatMul" and n.input[1] in weights for n in head_ops.node if n.name in q)
    assert any(n.op_type == "MatMul" and n.name not in q for n in head_ops.node)
    assert any(n.op_type in ("Conv", "Gemm") for n in head_ops.node)
    assert not any(n.op_type in ("Conv", "Gemm") and n.name in q for n in head_ops.node)


def test_runtime_uses_it_on_cpu_and_scores_stay_close(exported: Path) -> None:
    s8 = Scorer(exported, providers=("cpu",), threads=1)
    s32 = Scorer(exported, providers=("cpu",), threads=1, int8=False)
    assert s8.frames_int8 and s8.pair is not None
    assert (s8.pair.frames_path, s8.pair.head_path) == (int8_frames_path(exported), int8_head_path(exported))
    assert not s32.frames_int8 and s32.pair is not None
    assert (s32.pair.frames_path, s32.pair.head_path) == pair_paths(exported)
    audio, sr = load_audio(DEMO)
    w48 = audio[30 * sr : 36 * sr].astype(np.float32)
    w16 = w48[::3].copy()
    got8, got32 = (stream_windows(scorer, w16, w48, hop=16000)[0] for scorer in (s8, s32))
    diff = np.abs(np.array(got8) - np.array(got32))
    assert len(diff) == 5 and 0 < diff.max() < 0.05  # quantised (not identical), and close


def test_bad_calibration_input(tmp_path: Path, speech: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QuantizeError, match="no such manifest or folder"):
        clips_from(tmp_path / "none", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizeError, match="no audio files"):
        clips_from(tmp_path / "empty", 4)
    assert len(clips_from(speech, 4)) == 4 and len(clips_from(speech, 100)) == 6
    audio, sr = load_audio(DEMO)
    sf.write(tmp_path / "short.wav", audio[: sr // 2], sr)
    with pytest.raises(QuantizeError, match="shorter than 1 s"):
        calibration_feeds([tmp_path / "short.wav"], ["wave16", "wave48"])
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(QuantizeError, match="bad.wav"):
        calibration_feeds([tmp_path / "bad.wav"], ["wave16"])
    ckpt = save_checkpoint(tmp_path / "t.pt", tiny_distill_model())
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(out), "--int8", str(speech)]) == 2
    assert "add --incremental" in capsys.readouterr().err
    args = [
        "export",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(out),
        "--incremental",
        "--int8",
        str(tmp_path / "x"),
    ]
    assert main(args) == 2
    assert "--int8: " in capsys.readouterr().err and not int8_frames_path(out).exists()
