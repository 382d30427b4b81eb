"""`samos bench vad`: the speech gate on a small P.835-shaped folder of real talkers, noise and silence."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.bench import vad

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitor"))
from monitor_helpers import speech_like  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A P.835-shaped folder (six clean talkers; one clip per set) and a noise folder (one hum)."""
    root = tmp_path_factory.mktemp("vadbench")
    p835, noise = root / "p835", root / "noise"
    for d in ("clean48k", "fb48k", "wb16k", "nb8k"):
        (p835 / d).mkdir(parents=True)
    for i, t in enumerate(vad.TALKERS):
        sf.write(p835 / "clean48k" / f"{t}.wav", speech_like(2.0, 48_000, seed=i), 48_000)
    for s, rate in (("fb48k", 48_000), ("wb16k", 16_000)):
        sf.write(p835 / s / "c0_f1.wav", speech_like(4.5, rate, seed=9), rate)
        (p835 / f"{s}.csv").write_text(f"path,mos,condition\n{s}/c0_f1.wav,4.5,c0\n")
    sf.write(p835 / "nb8k" / "sp01_c1_sn0.wav", speech_like(4.5, 8_000, seed=10), 8_000)
    nb = "path,condition_mos,condition\nnb8k/sp01_c1_sn0.wav,2.0,c1\n"
    (p835 / "nb8k_condition_level.csv").write_text(nb)
    noise.mkdir()
    t = np.arange(44_100 * 3) / 44_100
    hum = 0.1 * np.sin(2 * np.pi * 100 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))  # mains hum, pulsing
    sf.write(noise / "hum.wav", hum.astype(np.float32), 44_100)
    return p835, noise


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    vad.add_arguments(p)
    return p.parse_args(list(argv))


def test_report_old_and_new_gate(folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    p835, noise = folders
    argv = ("--p835", str(p835), "--noise", str(noise), "--snrs=-10,20", "--levels=-30")
    assert vad.run(_args(*argv, "--json")) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["gate"] == {"speech_threshold": 0.4, "min_active": 0.1}
    assert set(rep["p835"]) == {"fb48k", "wb16k", "nb8k"} and rep["p835"]["fb48k"]["c0"]["new"] == 1.0
    assert set(rep["mix"]) == {"white", "hum"} and set(rep["mix"]["white"]) == {"-10", "20"}
    # talkers in white noise at -10 dB: the energy VAD scored none of it, the speech detector all
    assert rep["mix"]["white"]["-10"] == {"old": 0.0, "new": 1.0, "n": rep["mix"]["white"]["-10"]["n"]}
    ns = rep["no_speech"]
    assert ns["hum"]["-30"]["old"] == 1.0 and ns["hum"]["-30"]["new"] == 0.0  # pulsing hum is not speech
    assert ns["white"]["-30"]["new"] == 0.0 and ns["white"]["-30"]["silence"] == 0.0
    assert ns["digital silence"]["-"]["silence"] == 1.0
    assert vad.run(_args(*argv)) == 0
    table = capsys.readouterr().out
    assert "| white | 0% -> 100% | 100% -> 100% |" in table
    assert "| digital silence | 0% -> 0% (100%) |" in table


def test_cost_of_both_graphs_side_by_side(
    folders: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    p835, noise = folders
    assert vad.run(_args("--p835", str(p835), "--noise", str(noise), "--cost-only", "--json")) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep) == {"cost", "seconds"}  # nothing else was run
    c = rep["cost"]
    assert c["frames"] == 5 * (6 * 2 * 16_000 // 512)  # 5 rounds over the six 2 s talkers, 1 s blocks
    assert set(c["us_per_frame"]) == {"source", "dense"} and min(c["us_per_frame"].values()) > 0
    assert c["source_over_dense"] == pytest.approx(
        c["us_per_frame"]["source"] / c["us_per_frame"]["dense"], 0.02
    )
    assert 0 <= c["max_prob_difference"] < 1e-5
    assert vad.run(_args("--p835", str(p835), "--noise", str(noise), "--cost-only")) == 0
    assert "| dense (loaded by the monitor) |" in capsys.readouterr().out


def test_missing_inputs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert vad.run(_args("--p835", str(tmp_path / "nope"), "--noise", str(tmp_path))) == 2
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "p").mkdir()
    assert vad.run(_args("--p835", str(tmp_path / "p"), "--noise", str(tmp_path))) == 2
    assert "missing clean talker" in capsys.readouterr().err


def test_mos_bands() -> None:
    assert [vad.mos_band(x) for x in (1.0, 1.5, 1.99, 2.0, 3.49, 3.5, 4.9)] == [
        "<1.5",
        "1.5-2",
        "1.5-2",
        "2-2.5",
        "3-3.5",
        ">=3.5",
        ">=3.5",
    ]


def test_rated_manifest_by_quality(
    folders: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Windows scored per listeners' MOS band: speech rated 4.2 is scored; a clip rated 1.2 that the
    detector does not take for speech (noise) is counted as a clip with no scored window."""
    p835, noise = folders
    rated = tmp_path / "rated"
    rated.mkdir()
    sf.write(rated / "talk.wav", speech_like(5.0, 48_000, seed=3), 48_000)
    rng = np.random.default_rng(0)
    sf.write(rated / "hiss.wav", (0.05 * rng.standard_normal(5 * 16_000)).astype(np.float32), 16_000)
    (rated / "m.csv").write_text("path,mos\ntalk.wav,4.2\nhiss.wav,1.2\n")
    argv = (
        "--p835",
        str(p835),
        "--noise",
        str(noise),
        "--snrs=20",
        "--levels=-30",
        "--rated",
        str(rated / "m.csv"),
    )
    assert vad.run(_args(*argv, "--json")) == 0
    bands = json.loads(capsys.readouterr().out)["rated"][str(rated / "m.csv")]
    assert list(bands) == ["<1.5", ">=3.5"]
    assert (
        bands[">=3.5"]["new"] == 1.0
        and bands[">=3.5"]["unscored_clips"] == 0
        and bands[">=3.5"]["clips"] == 1
    )
    assert bands["<1.5"]["new"] == 0.0 and bands["<1.5"]["unscored_clips"] == 1
    assert vad.run(_args(*argv)) == 0
    assert "| <1.5 | " in capsys.readouterr().out
    (rated / "bad.csv").write_text("path,mos\ntalk.wav,good\n")
    assert vad.run(_args("--p835", str(p835), "--noise", str(noise), "--rated", str(rated / "bad.csv"))) == 2
    assert "is not a number" in capsys.readouterr().err
