"""Checkpoints: round trip gives identical outputs, self-contained SSL weights, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchaudio
from model_helpers import tiny_arch
from torchaudio.models import wav2vec2_model

from samos import __version__
from samos.config import ModelConfig, SpecConfig, SSLConfig, to_dict
from samos.model import SAMOS, CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from samos.model.ssl import Wav2Vec2Arch, bundle_weights_path


def perturb(model: SAMOS) -> SAMOS:
    """Move trainable weights and BatchNorm statistics away from their initial values."""
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(torch.randn_like(p) * 0.05)
        for name, buf in model.named_buffers():
            if name.endswith("running_mean") and not name.startswith("ssl."):
                buf.add_(torch.randn_like(buf) * 0.1)
    return model.eval()


def outputs(model: SAMOS, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w16 = torch.randn(2, 12_000, generator=g) * 0.1
    w48 = torch.randn(2, 36_000, generator=g) * 0.1
    with torch.no_grad():
        return model(w16 if model.ssl is not None else None, w48 if model.spec_encoder is not None else None)


def assert_same(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_round_trip_random_arch_stores_ssl_weights(tmp_path: Path) -> None:
    model = perturb(SAMOS(ModelConfig(ssl=SSLConfig(family="wav2vec2", arch=tiny_arch(3), layer=2))))
    path = save_checkpoint(tmp_path / "m.pt", model, metadata={"epoch": 3, "val_pcc": 0.91})
    loaded, meta = load_checkpoint(path)
    assert loaded.cfg == model.cfg and not loaded.training
    assert_same(outputs(model), outputs(loaded))
    assert meta["epoch"] == 3 and meta["val_pcc"] == 0.91
    assert meta["samos_version"] == __version__ and meta["created"].endswith("+00:00")
    raw = read_checkpoint(path)
    assert raw["format"] == "samos-checkpoint/1" and raw["config"] == to_dict(model.cfg)
    assert raw["ssl"]["weights"] == "stored" and any(k.startswith("ssl.") for k in raw["state_dict"])


def test_round_trip_state_dict_source_survives_deleting_the_source(tmp_path: Path) -> None:
    arch = tiny_arch(3, layer_norm_first=True)
    params = Wav2Vec2Arch.from_dict(
        {"model_type": "wav2vec2", "params": arch, "normalize_waveform": False}
    ).params
    src = tmp_path / "encoder.pth"
    torch.save(wav2vec2_model(**params, aux_num_out=None).state_dict(), src)
    cfg = ModelConfig(
        ssl=SSLConfig(family="wav2vec2", checkpoint=str(src), arch=arch, layer=2, normalize_waveform=True)
    )
    model = perturb(SAMOS(cfg))
    path = save_checkpoint(tmp_path / "m.pt", model, metadata={})
    src.unlink()
    loaded, _ = load_checkpoint(path)
    assert loaded.ssl.normalize_waveform  # type: ignore[union-attr]
    assert_same(outputs(model), outputs(loaded))


def test_round_trip_distillmos_and_spec_only(tmp_path: Path) -> None:
    for i, cfg in enumerate(
        [
            ModelConfig(ssl=SSLConfig(family="distillmos", layer=2)),
            ModelConfig(ssl=SSLConfig(family="distillmos", layer=3, layer_mix="mean")),
            ModelConfig(ssl=SSLConfig(family="none")),
        ]
    ):
        model = perturb(SAMOS(cfg))
        path = save_checkpoint(tmp_path / f"m{i}.pt", model, metadata={"note": "x"})
        assert not any(k.startswith("ssl.") for k in read_checkpoint(path)["state_dict"])
        loaded, _ = load_checkpoint(path)
        assert_same(outputs(model), outputs(loaded))
        if model.ssl is not None:
            assert loaded.ssl.layer_mix == model.ssl.layer_mix  # type: ignore[union-attr]


def test_round_trip_bundle_keeps_only_the_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchaudio.pipelines._wav2vec2.impl import Wav2Vec2Bundle

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    arch = tiny_arch(2)
    params = Wav2Vec2Arch.from_dict(
        {"model_type": "wav2vec2", "params": arch, "normalize_waveform": False}
    ).params
    bundle = Wav2Vec2Bundle("samos_tiny_ckpt.pth", dict(params, aux_num_out=None), 16_000, False, "Wav2Vec2")
    monkeypatch.setattr(torchaudio.pipelines, "SAMOS_TINY_CKPT", bundle, raising=False)
    weights = bundle_weights_path("SAMOS_TINY_CKPT")
    weights.parent.mkdir(parents=True)
    torch.save(wav2vec2_model(**params, aux_num_out=None).state_dict(), weights)
    cfg = ModelConfig(
        ssl=SSLConfig(family="wav2vec2", bundle="SAMOS_TINY_CKPT", layer=1), spec=SpecConfig(enabled=False)
    )
    model = perturb(SAMOS(cfg))
    path = save_checkpoint(tmp_path / "m.pt", model, metadata={})
    raw = read_checkpoint(path)
    assert raw["ssl"]["weights"] == "bundle" and not any(k.startswith("ssl.") for k in raw["state_dict"])
    loaded, _ = load_checkpoint(path)
    assert_same(outputs(model), outputs(loaded))
    weights.unlink()
    with pytest.raises(CheckpointError, match="torch hub cache"):
        load_checkpoint(path)


def test_distillmos_weights_are_checked_by_checksum(tmp_path: Path) -> None:
    model = SAMOS(ModelConfig(ssl=SSLConfig(family="distillmos", layer=1), spec=SpecConfig(enabled=False)))
    path = save_checkpoint(tmp_path / "m.pt", model, metadata={})
    raw = read_checkpoint(path)
    assert len(raw["ssl"]["sha256"]) == 64 and raw["ssl"]["package_version"]
    raw["ssl"]["sha256"] = "0" * 64
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_checkpoint(path)


def test_missing_corrupt_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a torch checkpoint file"):
        load_checkpoint(corrupt)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch" * 10)
    with pytest.raises(CheckpointError, match="an ONNX model: give it to samos score"):
        load_checkpoint(onnx)
    objects = tmp_path / "objects.pt"
    torch.save({"format": Path("x")}, objects)  # a pickled object, not tensors and plain data
    with pytest.raises(CheckpointError, match="never unpickles arbitrary objects") as e:
        load_checkpoint(objects)
    assert "weights_only" not in str(e.value), "never advise loading an untrusted pickle"
    bare = tmp_path / "bare.pt"
    torch.save({"w": torch.zeros(2)}, bare)
    with pytest.raises(CheckpointError, match="bare state dict"):
        load_checkpoint(bare)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else/9", "config": {}, "state_dict": {}, "metadata": {}}, other)
    with pytest.raises(CheckpointError, match="not supported"):
        load_checkpoint(other)


def test_truncated_file_and_bad_config(tmp_path: Path) -> None:
    model = SAMOS(ModelConfig(ssl=SSLConfig(family="none")))
    path = save_checkpoint(tmp_path / "m.pt", model, metadata={})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="damaged or truncated"):
        load_checkpoint(cut)
    raw = read_checkpoint(path)
    raw["config"]["spec"]["chanels"] = [1]
    bad = tmp_path / "bad.pt"
    torch.save(raw, bad)
    with pytest.raises(CheckpointError, match="chanels"):
        load_checkpoint(bad)
    raw = read_checkpoint(path)
    raw["state_dict"].pop(next(iter(raw["state_dict"])))
    torch.save(raw, bad)
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(bad)


def test_metadata_is_made_plain(tmp_path: Path) -> None:
    import numpy as np

    model = SAMOS(ModelConfig(ssl=SSLConfig(family="none")))
    meta = {"pcc": np.float32(0.5), "loss": torch.tensor(1.25), "data": tmp_path, "epochs": (1, 2)}
    _, loaded = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, metadata=meta))
    assert loaded["pcc"] == 0.5 and loaded["loss"] == 1.25 and loaded["data"] == str(tmp_path)
    assert loaded["epochs"] == [1, 2]
    with pytest.raises(CheckpointError, match="metadata.model"):
        save_checkpoint(tmp_path / "x.pt", model, metadata={"model": model})
