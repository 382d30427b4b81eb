"""`samos data relabel`: distillation labels are the model's `samos score` scores; other columns kept."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.audio import load_audio
from samos.cli import main
from samos.data.manifest import read_manifest
from samos.data.relabel import relabel
from samos.runtime import Scorer
from samos.runtime.windows import score_many

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx  # noqa: E402

DEMO = Path(__file__).resolve().parents[2] / "samos" / "assets" / "demo_call_48k.flac"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A manifest of two real speech clips, one too short, one silent and one that is not audio."""
    audio, sr = load_audio(DEMO)
    clips = {"a.wav": audio[: 5 * sr], "b.wav": audio[6 * sr : 12 * sr], "short.wav": audio[: sr // 10]}
    clips["silent.wav"] = np.zeros(5 * sr, np.float32)
    for name, x in clips.items():
        sf.write(tmp_path / name, x, sr)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    rows = [("a.wav", 2.5, "x"), ("b.wav", 4.0, "y"), ("short.wav", 3.0, "z"), ("silent.wav", 1.0, "s")]
    rows.append(("broken.wav", 2.0, "w"))
    m = tmp_path / "m.csv"
    with m.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mos", "talker", "split"])
        w.writerows([(p, mos, t, "train") for p, mos, t in rows])
    return m


def test_labels_are_the_models_file_scores(corpus: Path, tmp_path: Path) -> None:
    model = make_tiny_onnx(tmp_path / "tiny.onnx", window_seconds=2.0)
    scorer = Scorer(model, providers=("cpu",), threads=1)
    result = relabel(read_manifest(corpus), scorer, tmp_path / "out" / "relabelled.csv")
    assert result.kept == 2
    assert dict(result.skipped.counts) == {"unscorable": 2, "no_scored_window": 1}
    out = read_manifest(result.out)
    assert [p.name for p in (it.path for it in out)] == ["a.wav", "b.wav"]
    # the label is what `samos score` gives the file (mean of its scored windows), not the old one
    want = [r.mos for r in score_many(scorer, [load_audio(tmp_path / n) for n in ("a.wav", "b.wav")])]
    assert [it.mos for it in out] == pytest.approx(want, abs=1e-5)
    rows = list(csv.DictReader(result.out.open()))
    assert [r["mos_before"] for r in rows] == ["2.5", "4"]
    assert [r["talker"] for r in rows] == ["x", "y"] and rows[0]["split"] == "train"
    assert rows[0]["label_model"].startswith("tiny.onnx@")
    assert (tmp_path / "out" / rows[0]["path"]).resolve() == (tmp_path / "a.wav").resolve()


def test_cli(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = make_tiny_onnx(tmp_path / "tiny.onnx", window_seconds=2.0)
    out = tmp_path / "r.csv"
    args = ["data", "relabel", str(corpus), "--model", str(model), "--out", str(out), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "2 of 5 clips labelled by tiny.onnx" in text and "unscorable: 2" in text
    missing = tmp_path / "none.csv"
    assert main(["data", "relabel", str(missing), "--model", str(model), "--out", str(out)]) == 2
    assert "none.csv" in capsys.readouterr().err
    assert main(["data", "relabel", str(corpus), "--model", str(tmp_path / "x.onnx"), "--out", str(out)]) == 2
    assert "no such model file" in capsys.readouterr().err
