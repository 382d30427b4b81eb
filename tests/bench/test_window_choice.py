"""`samos bench windows`: changing-quality calls from rated clips, held-out scoring, VAD gating, report."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.audio import SSL_RATE
from samos.bench import windows
from samos.bench.cv import load_p835

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "monitor"))
from monitor_helpers import speech_like  # noqa: E402
from tiny_onnx import make_tiny_onnx  # noqa: E402


def _speechlike(seconds: float, sr: int, seed: int, level: float = 0.3) -> np.ndarray:
    """Real talkers (the bundled demo call): the monitor's speech detector gates windows."""
    return speech_like(seconds, sr, level=level, seed=seed)


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A P.835-shaped folder: fb48k and wb16k with 2 talkers x 3 conditions, 1.5 s each; nb8k 2 x 2."""
    root = tmp_path_factory.mktemp("p835w")
    head = "path,mos,mos_sig,mos_bak,std,n_votes,condition,snr_db,mnru_q_db,sr,seconds"
    for s, sr in (("fb48k", 48_000), ("wb16k", 16_000)):
        (root / s).mkdir()
        rows = [head]
        for i, t in enumerate(("f1", "m1")):
            for j, (c, mos) in enumerate((("c0", 4.5), ("c3", 2.0), ("c6", 3.2))):
                sf.write(root / s / f"{c}_{t}.wav", _speechlike(1.5, sr, 10 * i + j), sr)
                rows.append(f"{s}/{c}_{t}.wav,{mos},{mos},{mos},0.5,7,{c},,,{sr},1.5")
        (root / f"{s}.csv").write_text("\n".join(rows) + "\n")
    (root / "nb8k").mkdir()
    rows = ["path,condition_mos,condition_mos_sig,condition_mos_bak,condition,snr_db,mnru_q_db,sr,seconds"]
    for i, pair in enumerate(("sp0102", "sp0607")):
        for c, mos in (("c1", 3.9), ("c3", 1.8)):
            sf.write(root / "nb8k" / f"{pair}_{c}_sn0.wav", _speechlike(1.5, 8000, 50 + i), 8000)
            rows.append(f"nb8k/{pair}_{c}_sn0.wav,{mos},{mos},{mos},{c},,,8000,1.5")
    (root / "nb8k_condition_level.csv").write_text("\n".join(rows) + "\n")
    return root


def test_targets_are_overlap_weighted_means() -> None:
    label = np.array([4.0] * 10 + [2.0] * 10)
    starts = windows.window_starts(len(label), 8, 4)
    np.testing.assert_array_equal(starts, [0, 4, 8, 12])
    np.testing.assert_allclose(windows.window_targets(label, starts, 8), [4.0, 3.5, 2.5, 2.0])
    assert windows.window_starts(5, 8, 4).size == 0


def test_calls_join_clips_in_a_seeded_order(rated: Path) -> None:
    clips = [c for c in load_p835(rated) if c.set == "wb16k"]
    a = windows.join_clips(clips, "wb16k", "m", seed=1)
    b = windows.join_clips(clips, "wb16k", "m", seed=1)
    c = windows.join_clips(clips, "wb16k", "m", seed=2)
    assert a.rate == 16_000 and len(a.wave48) == 3 * len(a.wave16) == 3 * len(a.label16)
    np.testing.assert_array_equal(a.label16, b.label16)
    assert not np.array_equal(a.label16, c.label16)
    # each condition: two clips of 1.5 s, each label covering exactly its own clip
    values, counts = np.unique(a.label16, return_counts=True)
    assert dict(zip(values.tolist(), counts.tolist(), strict=True)) == {2.0: 48_000, 3.2: 48_000, 4.5: 48_000}


def test_silent_windows_are_cut_and_every_scored_window_has_its_length() -> None:
    sr = SSL_RATE
    speech = _speechlike(2.0, sr, 0)
    silence = np.zeros(2 * sr, np.float32)
    w16 = np.concatenate([speech, silence])
    call = windows.Call(
        "wb16k", "m", w16, np.repeat(w16, 3), np.concatenate([np.full(2 * sr, 4.0), np.full(2 * sr, 1.0)]), sr
    )
    seen: list[tuple[int, ...]] = []

    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        seen.append(a.shape)
        assert b.shape == (a.shape[0], 3 * a.shape[1])
        return np.sqrt(np.mean(a**2, axis=1))  # louder window, higher "MOS"

    res = windows.score_windows([call], {"m": score}, 1.0, 0.5)
    assert res.cut >= 2  # the windows wholly inside the dead air get a status, not a score
    assert len(res.pred) + res.cut == 7
    assert all(s[1] == sr for s in seen)
    assert np.all(res.target > 1.0)  # no window of pure silence was scored


def _fold_models(rated: Path, tmp: Path) -> Path:
    """Two fold checkpoints of a tiny random SAMOS, each with the train.csv of the talker it trained on."""
    torch = pytest.importorskip("torch")
    from samos.config import ModelConfig, from_dict
    from samos.model.checkpoint import save_checkpoint
    from samos.model.samos_model import SAMOS

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    from train_helpers import TINY_MODEL

    clips = load_p835(rated)
    folds = tmp / "samos-x"
    talkers = sorted({c.talker for c in clips})
    for k, held in enumerate(([talkers[0]], talkers[1:])):
        torch.manual_seed(k)
        model = SAMOS(from_dict(ModelConfig, TINY_MODEL)).eval()
        d = folds / f"fold{k}"
        save_checkpoint(d / "final.pt", model)
        with open(d / "train.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["path", "mos"])
            w.writerows([[str(c.path), c.label] for c in clips if c.talker not in held])
    return folds


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    windows.add_arguments(p)
    return p.parse_args(list(argv))


def test_fold_models_score_only_their_held_out_clips(
    rated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folds = _fold_models(rated, tmp_path)
    clips = load_p835(rated)
    scorers, held = windows.fold_scorers(folds, clips)
    assert sorted(scorers) == ["fold0", "fold1"]
    for name in held:
        with open(folds / name / "train.csv", newline="") as f:
            trained = {r["path"] for r in csv.DictReader(f)}
        assert held[name] and not {str(c.path) for c in held[name]} & trained
    assert sum(len(v) for v in held.values()) == len(clips)

    cost = make_tiny_onnx(tmp_path / "tiny.onnx", window_seconds=1.0)
    out = tmp_path / "w.json"
    args = _parse(
        "--p835",
        str(rated),
        "--folds",
        str(folds),
        "--windows",
        "0.5,1",
        "--hops",
        "0.25,0.5,1",
        "--step",
        "0.25",
        "--cost-model",
        str(cost),
        "--cost-budget",
        "0.05",
        "--json",
        "--out",
        str(out),
    )
    assert windows.run(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep == json.loads(out.read_text())
    assert rep["models"] == ["fold0", "fold1"]
    one = rep["windows"]["1"]
    assert set(one["accuracy"]) == {"fb48k", "wb16k", "nb8k", "pooled"}
    assert one["accuracy"]["pooled"]["n"] == sum(one["accuracy"][s]["n"] for s in ("fb48k", "wb16k", "nb8k"))
    assert one["cpu_ms_per_window"] > 0
    assert set(one["hops"]) == {"0.25", "0.5", "1"}  # only hops up to the window
    assert set(rep["windows"]["0.5"]["hops"]) == {"0.25", "0.5"}
    h = one["hops"]["0.5"]
    assert h["change_to_score_s"] == pytest.approx(1.5 + one["cpu_ms_per_window"] / 1e3, abs=1e-3)
    assert h["cpu_s_per_stream_s"] == pytest.approx(one["cpu_ms_per_window"] / 1e3 / 0.5, abs=1e-5)


def test_bad_arguments_get_one_line(rated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert windows.run(_parse("--p835", str(rated), "--folds", str(tmp_path))) == 2
    assert "no fold*/final.pt" in capsys.readouterr().err
    assert windows.run(_parse("--p835", str(rated), "--folds", str(tmp_path), "--sets", "fb44k")) == 2
    assert "unknown set" in capsys.readouterr().err
    assert windows.run(_parse("--p835", str(tmp_path / "none"), "--model", str(tmp_path / "m.onnx"))) == 2
    assert capsys.readouterr().err.startswith("samos bench windows: ")
    with pytest.raises(SystemExit):
        _parse("--model", "m.onnx", "--windows", "0,1")


def test_the_embedded_default_is_refused(rated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from samos.runtime.scorer import resolve_model_path

    try:
        default = resolve_model_path(None)
    except ValueError:
        pytest.skip("this installation has no embedded default model")
    assert windows.run(_parse("--p835", str(rated), "--model", str(default), "--sets", "nb8k")) == 2
    assert "trained on P.835" in capsys.readouterr().err


def test_accuracy_is_per_set_and_pooled() -> None:
    res = windows.WindowResult(
        pred=np.array([1.0, 2.0, 3.0, 1.0, 2.0, 2.5]),
        target=np.array([1.5, 2.5, 3.5, 3.0, 2.0, 1.0]),
        sets=np.array(["fb48k"] * 3 + ["wb16k"] * 3),
        cut=0,
    )
    acc = windows.accuracy(res)
    assert acc["fb48k"]["pcc"] == pytest.approx(1.0) and acc["fb48k"]["rmse"] == pytest.approx(0.5)
    assert acc["wb16k"]["pcc"] < 0
    assert acc["pooled"]["n"] == 6
