"""`samos bench accuracy`: condition-level nb8k, CV linear mapping for peers, cross-validated samos runs."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from samos.bench import accuracy
from samos.bench.accuracy_report import system_agreement
from samos.bench.cv import Clip, load_p835, talker_folds
from samos.runtime import Scorer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from tiny_onnx import make_tiny_onnx  # noqa: E402

TINY_RECIPE = """
model:
  ssl:
    family: wav2vec2
    layer: 1
    arch:
      extractor_mode: group_norm
      extractor_conv_layer_config:
        [[8, 10, 5], [8, 3, 2], [8, 3, 2], [8, 3, 2], [8, 3, 2], [8, 2, 2], [8, 2, 2]]
      encoder_embed_dim: 16
      encoder_num_layers: 1
      encoder_num_heads: 2
      encoder_ff_interm_features: 32
      encoder_pos_conv_kernel: 16
      encoder_pos_conv_groups: 4
  ssl_head: {channels: [8, 8], kernel: 3, pool: 2, dropout: 0.0}
  spec: {enabled: true, channels: [4, 4], pool_after: 1, dropout: 0.0}
  fusion: {hidden: [8]}
device: cpu
threads: 1
finetune:
  data: {format: generic, train: [unused.csv], valid: [unused.csv]}
  epochs: 1
  batch_size: 8
  lr: 0.003
  crop_seconds: 0.5
  seed: 0
  cache_dtype: float32
"""


def _tone(seconds: float, sr: int, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = x + rng.normal(0, 1, len(t)) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def tiny_p835(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A P.835-shaped folder: 2 talkers x 2 conditions per wide-band set, 2 NOIZEUS talkers in nb8k."""
    root = tmp_path_factory.mktemp("p835")
    conds = {"c0": (40.0, 4.5), "c3": (5.0, 1.8)}
    head = "path,mos,mos_sig,mos_bak,std,n_votes,condition,snr_db,mnru_q_db,sr,seconds"
    for s, sr in (("fb48k", 48_000), ("wb16k", 16_000)):
        (root / s).mkdir()
        rows = [head]
        for i, t in enumerate(("f1", "m1")):
            for c, (snr, mos) in conds.items():
                sf.write(root / s / f"{c}_{t}.wav", _tone(0.8, sr, snr, i), sr)
                rows.append(f"{s}/{c}_{t}.wav,{mos + 0.1 * i},{mos},{mos},0.5,7,{c},{snr},,{sr},0.8")
        (root / f"{s}.csv").write_text("\n".join(rows) + "\n")
    (root / "nb8k").mkdir()
    rows = ["path,condition_mos,condition_mos_sig,condition_mos_bak,condition,snr_db,mnru_q_db,sr,seconds"]
    for i, pair in enumerate(("sp0102", "sp0607")):
        for c, (snr, mos) in conds.items():
            if c == "c0":
                c, snr, mos = "c1", 30.0, 3.9
            sf.write(root / "nb8k" / f"{pair}_{c}_sn0.wav", _tone(0.8, 8000, snr, 10 + i), 8000)
            rows.append(f"nb8k/{pair}_{c}_sn0.wav,{mos},{mos},{mos},{c},{snr},,8000,0.8")
    (root / "nb8k_condition_level.csv").write_text("\n".join(rows) + "\n")
    return root


def test_nb8k_is_evaluated_per_condition() -> None:
    clips = [
        Clip(Path(f"/x/{i}.wav"), "nb8k", 2.0 if i < 3 else 4.0, "c1" if i < 3 else "c2", "nz1")
        for i in range(6)
    ]
    clips.append(Clip(Path("/x/a.wav"), "fb48k", 3.0, "c1", "f1"))
    pred = np.array([1.0, 2.0, 3.0, 5.0, 4.0, 3.0, 2.5])
    points = accuracy.evaluation_points(clips, pred)
    np.testing.assert_allclose(points["nb8k"][0], [2.0, 4.0])
    np.testing.assert_allclose(points["nb8k"][1], [2.0, 4.0])
    assert len(points["fb48k"][0]) == 1
    assert len(points["pooled"][0]) == 3
    with pytest.raises(ValueError, match="expected 7"):
        accuracy.evaluation_points(clips, pred[:3])


def test_report_maps_only_peers_and_keeps_pcc(tiny_p835: Path) -> None:
    clips = load_p835(tiny_p835)
    folds = talker_folds(clips)
    labels = np.array([c.label for c in clips])
    rng = np.random.default_rng(0)
    peer = 0.5 * labels + 2.0 + rng.normal(0, 0.05, len(labels))  # right order, wrong scale
    rep = accuracy.build_report(
        clips, folds, "talker", {"samos": labels.copy(), "peer": peer}, mapped_for=["peer"]
    )
    assert set(rep) == {"sets", "cv", "models"}
    assert rep["sets"]["nb8k"] == {"n": 2, "level": "condition"}
    assert rep["models"]["samos"]["fb48k"]["rmse"] == pytest.approx(0.0)
    assert "rmse_linear" not in rep["models"]["samos"]["fb48k"]
    assert rep["models"]["peer"]["fb48k"]["pcc"] > 0.9
    assert rep["cv"] == {"scheme": "talker", "folds": 2}
    table = accuracy.format_table(accuracy._json_safe(rep))
    assert "samos" in table and "peer" in table


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """The cross-validated samos runs train with torch (skipped without it), on one thread."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _args(p835: Path, tmp: Path, *extra: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    accuracy.add_arguments(p)
    return p.parse_args(
        ["--p835", str(p835), "--cache", str(tmp / "cache"), "--workdir", str(tmp / "runs"), "--json", *extra]
    )


def test_unknown_model_and_missing_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert accuracy.run(_args(tmp_path, tmp_path, "--models", "nisqa")) == 2
    assert "unknown model" in capsys.readouterr().err
    assert accuracy.run(_args(tmp_path / "nope", tmp_path, "--models", "distillmos")) == 1
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_one_run_reports_cross_validated_samos_and_peers(
    torch_one_thread: None, tiny_p835: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    args = _args(
        tiny_p835,
        tmp_path,
        "--models",
        "samos,samos_ssl_only,distillmos",
        "--config",
        str(recipe),
        "--out",
        str(tmp_path / "report.json"),
        "--cv",
        "talker",
    )
    assert accuracy.run(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep["models"]) == {"samos", "samos_ssl_only", "distillmos"}
    for name, per_set in rep["models"].items():
        assert set(per_set) == {"fb48k", "wb16k", "nb8k", "pooled"}
        assert per_set["pooled"]["n"] == 4 + 4 + 2
        assert ("rmse_linear" in per_set["pooled"]) == (name == "distillmos")
    assert json.loads((tmp_path / "report.json").read_text()) == rep
    # every fold trained only on the other talker: its manifest never lists a held-out clip
    for manifest in (tmp_path / "runs").glob("samos-*/fold*/train.csv"):
        with open(manifest) as f:
            talkers = {r["talker"] for r in csv.DictReader(f)}
        fold = int(manifest.parent.name.removeprefix("fold"))
        assert talkers.isdisjoint({["f1", "m1"][fold], ["nz1", "nz2"][fold]})
    # a rerun comes from the caches: same figures, no new fold run
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("final.pt"))
    assert accuracy.run(args) == 0
    assert json.loads(capsys.readouterr().out) == rep
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("final.pt")) == before


def test_per_clip_predictions_round_trip_across_copies(tiny_p835: Path, tmp_path: Path) -> None:
    clips = load_p835(tiny_p835)
    folds = talker_folds(clips)
    preds = {"samos": np.linspace(1, 5, len(clips)), "distillmos": np.linspace(5, 1, len(clips))}
    path = accuracy.write_per_clip(tmp_path / "per_clip.csv", clips, folds, preds)
    # the same clips under another folder (e.g. a FLAC copy on another machine) match by set and name
    moved = [
        Clip(tmp_path / c.set / (c.path.stem + ".flac"), c.set, c.label, c.condition, c.talker) for c in clips
    ]
    back = accuracy.read_per_clip(path, moved)
    for name, values in preds.items():
        np.testing.assert_allclose(back[name], values, atol=1e-6)
    with pytest.raises(accuracy.BenchError, match="no samos prediction"):
        accuracy.read_per_clip(path, [*moved, Clip(tmp_path / "x.wav", "fb48k", 3.0, "c0", "f9")])
    with pytest.raises(accuracy.BenchError, match="no such predictions file"):
        accuracy.read_per_clip(tmp_path / "missing.csv", moved)


@pytest.fixture(scope="module")
def tiny_vmc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vmc24t3-shaped folder: 12 clips at 16 kHz, quality falling with their noise."""
    root = tmp_path_factory.mktemp("vmc24t3")
    (root / "wav").mkdir()
    rows = ["path,mos,mos_sig,mos_bak,system,talker"]
    for i in range(12):
        snr = 40.0 - 3.5 * i
        sf.write(root / "wav" / f"v{i}.wav", _tone(0.9, 16_000, snr, 100 + i), 16_000)
        mos = 4.5 - 0.3 * i
        rows.append(f"wav/v{i}.wav,{mos},{mos},{mos},sys{i % 3},p232")
    (root / "vmc24t3.csv").write_text("\n".join(rows) + "\n")
    return root


def test_default_model_file_on_both_fold_schemes_and_out_of_domain(
    tiny_p835: Path, tiny_vmc: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "calibrated.onnx"
    args = _args(
        tiny_p835,
        tmp_path,
        "--models",
        "samos_default",
        "--model",
        str(model),
        "--vmc24t3",
        str(tiny_vmc),
        "--write-calibrated",
        str(out),
        "--condition-folds",
        "2",
        "--talker-groups",
        "2",
    )
    assert accuracy.run(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert list(rep["schemes"]) == ["talker", "condition_talker"]
    assert rep["cv"]["scheme"] == "talker" and rep["models"] == rep["schemes"]["talker"]["models"]
    assert rep["schemes"]["condition_talker"]["cv"]["folds"] >= 2
    assert rep["in_sample"] == ["samos_default"]
    for block in rep["schemes"].values():
        m = block["models"]["samos_default"]
        assert set(m) == {"fb48k", "wb16k", "nb8k", "pooled"} and "rmse_cal" in m["pooled"]
    vmc = rep["out_of_domain"]["vmc24t3"]
    assert vmc["n"] == 12 and set(vmc["models"]) == {"samos_default"}
    r = vmc["models"]["samos_default"]
    assert {"pcc", "srcc", "rmse", "rmse_cal", "pcc_cal"} <= set(r)
    # the tiny model's score falls with noise, as the labels do
    assert r["srcc"] > 0.9
    assert r["system"]["n"] == 3 and set(r["system"]["within_pcc"]) == {"sys0", "sys1", "sys2"}
    unc = rep["uncertainty"]["samos_default"]
    assert set(unc) == {"fb48k (in-sample)", "wb16k (in-sample)", "vmc24t3"}
    assert 0.0 <= unc["vmc24t3"]["raw"]["coverage_1std"] <= unc["vmc24t3"]["raw"]["coverage_2std"] <= 1.0
    # the written file carries exactly the reported mapping, and the runtime applies it
    written = Scorer(out, providers=("cpu",), threads=1).info
    assert (
        json.loads(written.calibration.to_json()) == rep["calibration"]["samos_default"]["samos.calibration"]
    )
    assert written.weights_sha256 == Scorer(model, providers=("cpu",), threads=1).info.weights_sha256
    table = accuracy.format_table(rep)
    assert "vmc24t3 (n=12" in table and "samos_default*" in table and "condition_talker" in table
    assert "sysSRCC" in table and "each of the 3 systems' mean score" in table


def test_system_level_agreement_is_over_system_means() -> None:
    # three systems; inside each, the model ranks files backwards; across systems, exactly right
    labels = np.array([1.0, 1.5, 2.0, 3.0, 3.5, 4.0, 4.0, 4.5, 5.0])
    pred = np.array([2.0, 1.8, 1.6, 3.2, 3.0, 2.8, 4.4, 4.2, 4.0])
    systems = ["a"] * 3 + ["b"] * 3 + ["c"] * 3
    r = system_agreement(pred, labels, systems)
    assert r is not None and r["n"] == 3
    assert r["srcc"] == pytest.approx(1.0) and r["pcc"] > 0.95
    assert all(v == pytest.approx(-1.0) for v in r["within_pcc"].values())
    # fewer than three systems, or none named: no system-level figures
    assert system_agreement(pred, labels, ["a"] * 5 + ["b"] * 4) is None
    assert system_agreement(pred, labels, [""] * 9) is None
    # a system whose ratings do not vary has no within-system correlation
    flat = labels.copy()
    flat[:3] = 2.0
    assert system_agreement(pred, flat, systems)["within_pcc"]["a"] is None


def test_out_of_domain_set_absent(
    tiny_p835: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_tiny_onnx(tmp_path / "tiny.onnx")
    monkeypatch.setenv("SAMOS_VMC24T3", str(tmp_path / "absent"))
    base = ("--models", "samos_default", "--model", str(model), "--cv", "talker")
    assert accuracy.run(_args(tiny_p835, tmp_path, *base)) == 0  # the default place: skipped, said so
    captured = capsys.readouterr()
    assert "out-of-domain set skipped" in captured.err
    assert "skipped" in json.loads(captured.out)["out_of_domain"]["vmc24t3"]
    assert accuracy.run(_args(tiny_p835, tmp_path, *base, "--vmc24t3", str(tmp_path / "nope"))) == 1
    assert "no vmc24t3.csv" in capsys.readouterr().err  # asked for by name: an error
    assert accuracy.run(_args(tiny_p835, tmp_path, *base, "--cv", "talker,bogus")) == 2
    assert accuracy.run(_args(tiny_p835, tmp_path, "--predictions", "x.csv")) == 2  # two schemes by default


@pytest.mark.slow
def test_condition_talker_folds_train_on_neither_the_talkers_nor_the_conditions(
    torch_one_thread: None, tiny_p835: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    args = _args(
        tiny_p835,
        tmp_path,
        "--models",
        "samos",
        "--config",
        str(recipe),
        "--cv",
        "condition_talker",
        "--condition-folds",
        "2",
        "--talker-groups",
        "2",
    )
    assert accuracy.run(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["cv"] == {"scheme": "condition_talker", "folds": 4}
    clips = load_p835(tiny_p835)
    plan = accuracy.fold_plan(clips, "condition_talker", 2, 2)
    manifests = sorted((tmp_path / "runs").glob("samos-*/fold*/train.csv"))
    assert len(manifests) == 4
    for manifest in manifests:
        with open(manifest) as f:
            rows = list(csv.DictReader(f))
        k = int(manifest.parent.name.removeprefix("fold"))
        test = [c for c, m in zip(clips, plan.test_mask(k), strict=True) if m]
        assert {r["talker"] for r in rows}.isdisjoint({c.talker for c in test})
        assert {r["condition"] for r in rows}.isdisjoint({c.condition for c in test})


def test_cv_of_a_mixed_recipe_keeps_its_other_training_lists(
    torch_one_thread: None, tiny_p835: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A joint step 2 (P.835 + a pseudo-labelled corpus, data.mix): each fold replaces only the first list."""
    from samos.model.checkpoint import load_checkpoint

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = ["path,mos"]
    for i in range(6):
        sf.write(corpus / f"s{i}.wav", _tone(0.8, 48_000, 5.0 + 6 * i, 20 + i), 48_000)
        rows.append(f"s{i}.wav,{1.5 + 0.5 * i}")
    (corpus / "train.csv").write_text("\n".join(rows) + "\n")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        TINY_RECIPE.replace(
            "data: {format: generic, train: [unused.csv], valid: [unused.csv]}",
            f"data: {{format: generic, train: [unused.csv, {corpus / 'train.csv'}], "
            f"valid: [unused.csv, {corpus / 'train.csv'}], mix: [1, 1]}}",
        )
    )
    args = _args(tiny_p835, tmp_path, "--models", "samos", "--config", str(recipe), "--cv", "talker")
    assert accuracy.run(args) == 0
    json.loads(capsys.readouterr().out)
    finals = sorted((tmp_path / "runs").glob("samos-*/fold*/final.pt"))
    assert finals
    for final in finals:
        data = load_checkpoint(final)[1]["train_config"]["finetune"]["data"]
        assert data["train"] == [str(final.parent / "train.csv"), str(corpus / "train.csv")]
        assert data["valid"] == [str(final.parent / "train.csv"), str(corpus / "train.csv")]
        assert data["mix"] == [1.0, 1.0]
