"""The training loop end to end on synthesised audio with a tiny random wav2vec2 (a few seconds each)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from train_helpers import TINY_MODEL

from samos.config import from_dict
from samos.data.manifest import read_manifest
from samos.data.synthetic import SyntheticConfig, generate
from samos.model.checkpoint import load_checkpoint, read_checkpoint
from samos.train.config import StepConfig, TrainConfig
from samos.train.loop import TrainingError, build_model, resolve_device, run_step, run_training

torch.set_num_threads(1)

SYNTH = {"train_items": 32, "valid_items": 16, "seconds": 0.8, "seed": 0}


def step(epochs: int, **kw: Any) -> dict[str, Any]:
    d = {
        "data": {"format": "synthetic", "synthetic": SYNTH},
        "epochs": epochs,
        "batch_size": 8,
        "lr": 0.003,
        "gamma": 0.999,
        "crop_seconds": 0.5,
        "seed": 0,
        "cache_dir": "cache",
    }
    d.update(kw)
    return d


def config(**steps: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, {"model": copy.deepcopy(TINY_MODEL), "device": "cpu", **steps})


def test_two_steps_lower_the_validation_loss_and_leave_checkpoints(tmp_path: Path) -> None:
    logs: list[str] = []
    results = run_training(config(pretrain=step(3), finetune=step(1, seed=1)), tmp_path, log=logs.append)
    pre, fine = results
    hist = pre.history
    assert [h["epoch"] for h in hist] == [0, 1, 2, 3]
    initial, final = hist[0]["val_loss"], fine.history[-1]["val_loss"]
    assert final < initial, (initial, final)
    assert fine.best_pcc > hist[0]["val_pcc"]  # selection found a better model than the initial one
    for name in ("pretrain", "finetune"):
        for f in ("best.pt", "last.pt", "metrics.csv", "metrics.json", "curves.png"):
            assert (tmp_path / name / f).is_file(), f
    model, meta = load_checkpoint(tmp_path / "final.pt")
    assert meta["steps"][-1]["name"] == "finetune"
    assert "train_state" in read_checkpoint(tmp_path / "pretrain" / "last.pt")
    assert (
        (tmp_path / "pretrain" / "metrics.csv")
        .read_text()
        .splitlines()[0]
        .startswith("epoch,train_loss,val_loss")
    )
    # step 2 starts from step 1's best checkpoint and finds every SSL feature already cached
    assert any(f"starting from {tmp_path / 'pretrain' / 'best.pt'}" in m for m in logs)
    assert any("[finetune] feature cache" in m and "48 hits, 0 misses" in m for m in logs), logs


def test_resume_continues_exactly(tmp_path: Path) -> None:
    quiet = lambda m: None  # noqa: E731
    run_training(config(pretrain=step(1)), tmp_path / "a", log=quiet)
    logs: list[str] = []
    resumed = run_training(config(pretrain=step(2)), tmp_path / "a", resume=True, log=logs.append)[0]
    assert any("resumed after epoch 1" in m for m in logs)
    straight = run_training(config(pretrain=step(2)), tmp_path / "b", log=quiet)[0]
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]
    for a, b in zip(resumed.history, straight.history, strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5, abs=1e-6)
    done: list[str] = []
    run_training(config(pretrain=step(2)), tmp_path / "a", resume=True, log=done.append)
    assert any("already complete" in m for m in done)


def test_bad_rows_are_summarised_and_training_goes_on_without_a_cache(tmp_path: Path) -> None:
    synth = SyntheticConfig(train_items=16, valid_items=8, seconds=0.6)
    train_csv = generate(synth, tmp_path / "syn", "train")
    valid_csv = generate(synth, tmp_path / "syn", "valid")
    with train_csv.open("a") as f:
        f.write("missing.wav,3.0,,,\ntrain/../train_0000_x.wav,nan,,,\n")
    (tmp_path / "syn" / "corrupt.wav").write_bytes(b"RIFFxxxxWAVE" + bytes(64))
    with train_csv.open("a") as f:
        f.write("corrupt.wav,2.0,,,\n")
    st = from_dict(
        StepConfig,
        {
            "data": {"format": "generic", "train": [str(train_csv)], "valid": [str(valid_csv)]},
            "epochs": 1,
            "batch_size": 8,
            "crop_seconds": 0.5,
            "lr": 0.003,
        },
    )
    cfg = config(pretrain=step(1))
    logs: list[str] = []
    res = run_step(
        "pretrain", st, build_model(cfg, 0), tmp_path / "run", resolve_device("cpu"), log=logs.append
    )
    summary = "\n".join(logs)
    assert "skipped 3 of 19 item(s)" in summary
    assert "missing_file: 1" in summary and "bad_label: 1" in summary and "unreadable: 1" in summary
    assert len(read_manifest(train_csv)) == 18
    assert [h["epoch"] for h in res.history] == [0, 1] and math.isfinite(res.history[-1]["val_loss"])
    assert not (tmp_path / "run" / "cache").exists()


def test_no_usable_data_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("path,mos\nnope.wav,3\n")
    st = from_dict(
        StepConfig,
        {"data": {"train": [str(tmp_path / "t.csv")], "valid": [str(tmp_path / "t.csv")]}, "epochs": 1},
    )
    cfg = config(pretrain=step(1))
    with pytest.raises(TrainingError, match="no usable items"):
        run_step(
            "pretrain", st, build_model(cfg, 0), tmp_path / "run", resolve_device("cpu"), log=lambda m: None
        )


@pytest.mark.parametrize(("from_trained", "best_epoch"), [(False, 2), (True, 0)])
def test_an_untrained_epoch_0_is_never_the_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_trained: bool, best_epoch: int
) -> None:
    """Random features may correlate with the labels (epoch 0 PCC 0.9 here); a fresh model's step
    still returns a trained epoch. A step that starts from a trained model may keep its start."""
    import samos.train.loop as loop
    from samos.train.metrics import Agreement

    pccs = iter([0.9, 0.5, 0.6])
    monkeypatch.setattr(loop, "agreement", lambda p, t: Agreement(len(p), next(pccs), 0.0, 1.0, 1.0))
    cfg = config(pretrain=step(2))
    assert cfg.pretrain is not None
    logs: list[str] = []
    res = run_step(
        "pretrain",
        cfg.pretrain,
        build_model(cfg, 0),
        tmp_path,
        resolve_device("cpu"),
        log=logs.append,
        from_trained=from_trained,
    )
    assert res.best_epoch == best_epoch and res.best_pcc == [0.9, 0.5, 0.6][best_epoch]
    _, meta = load_checkpoint(tmp_path / "pretrain" / "best.pt")
    assert meta["epoch"] == best_epoch
    assert read_checkpoint(tmp_path / "pretrain" / "last.pt")["train_state"]["best_epoch"] == best_epoch
    if not from_trained:
        assert any("epoch 0 is the untrained model" in m for m in logs)
    else:
        assert any("no epoch beat the starting model" in m for m in logs)


def test_mix_draws_each_manifest_by_its_share(tmp_path: Path) -> None:
    """Step 2 on human ratings plus pseudo-labelled clips: data.mix keeps the manifests apart."""
    from samos.data.synthetic import SyntheticConfig

    synth = SyntheticConfig(**SYNTH)
    train_csv = generate(synth, tmp_path / "corpus", "train")
    valid_csv = generate(synth, tmp_path / "corpus", "valid")
    header, *rows = train_csv.read_text().splitlines()
    small, large = tmp_path / "corpus" / "small.csv", tmp_path / "corpus" / "large.csv"
    small.write_text("\n".join([header, *rows[:6]]) + "\n")
    large.write_text("\n".join([header, *rows[6:]]) + "\n")
    data = {"format": "generic", "train": [str(small), str(large)], "valid": [str(valid_csv)], "mix": [1, 3]}
    cfg = config(finetune=step(2, data=data))
    logs: list[str] = []
    (result,) = run_training(cfg, tmp_path / "run", log=logs.append)
    assert any("mixing [6, 26] training clips by shares [1.0, 3.0]" in m for m in logs), logs
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    with pytest.raises(Exception, match="data.mix gives 1 shares for 2 train manifests"):
        config(finetune=step(1, data={**data, "mix": [1]}))


def test_a_model_stuck_on_one_score_stops_with_a_clear_error(tmp_path: Path) -> None:
    """A dead mean head (every ReLU of its last hidden layer off) predicts one MOS for every clip and
    gets no gradient: the step stops after ``collapse_epochs`` such epochs, not after all of them,
    and keeps its checkpoints."""
    cfg = config(pretrain=step(6, collapse_epochs=2))
    assert cfg.pretrain is not None
    model = build_model(cfg, 0)
    last_hidden = model.head.mu[-3]
    with torch.no_grad():
        last_hidden.weight.zero_()
        last_hidden.bias.fill_(-1.0)
    with pytest.raises(TrainingError, match="one MOS for every validation clip for 2 epochs in a row") as e:
        run_step("pretrain", cfg.pretrain, model, tmp_path, resolve_device("cpu"), log=lambda m: None)
    state = read_checkpoint(tmp_path / "pretrain" / "last.pt")["train_state"]
    assert state["epoch"] == 2
    assert [h["val_pred_std"] < 1e-6 for h in state["history"]] == [True, True, True]
    assert (tmp_path / "pretrain" / "best.pt").is_file()
    assert "pretrain.seed" in str(e.value)


def test_a_learning_model_is_not_stopped(tmp_path: Path) -> None:
    cfg = config(pretrain=step(3, collapse_epochs=1))
    res = run_training(cfg, tmp_path, log=lambda m: None)[0]
    assert [h["epoch"] for h in res.history] == [0, 1, 2, 3]
    assert all(h["val_pred_std"] > 1e-6 for h in res.history[1:])
