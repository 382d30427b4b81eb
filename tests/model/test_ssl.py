"""SSL encoders: truncation, weight sources (state dict, bundle cache, HF folder), freezing, distillmos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torchaudio
from model_helpers import speechlike, tiny_arch
from torch import nn
from torchaudio.models import wav2vec2_model, wavlm_model

from samos.config import SSLConfig
from samos.model.ssl import (
    DISTILLMOS_LAYERS,
    DistillMOSEncoder,
    SSLWeightsError,
    Wav2Vec2Arch,
    Wav2Vec2Encoder,
    build_ssl_encoder,
    bundle_weights_path,
    resolve_wav2vec2,
)


def full_model(arch: dict[str, Any], wavlm: bool = False) -> Any:
    """The untruncated torchaudio model with random weights (the reference)."""
    params = Wav2Vec2Arch.from_dict(
        {"model_type": "wavlm" if wavlm else "wav2vec2", "params": arch, "normalize_waveform": False}
    ).params
    factory = wavlm_model if wavlm else wav2vec2_model
    return factory(**params, aux_num_out=None).eval()


def reference_layer(model: Any, x: torch.Tensor, layer: int) -> torch.Tensor:
    with torch.no_grad():
        feats, _ = model.extract_features(x, num_layers=layer)
    return feats[-1]


# --------------------------------------------------------------------------------- truncation
@pytest.mark.parametrize(
    ("layer_norm_first", "wavlm", "layer"),
    [(False, False, 2), (True, False, 3), (False, True, 2), (True, False, 4)],
)
def test_truncated_encoder_equals_full_models_intermediate_layer(
    layer_norm_first: bool, wavlm: bool, layer: int
) -> None:
    arch = tiny_arch(4, layer_norm_first=layer_norm_first, wavlm=wavlm)
    full = full_model(arch, wavlm)
    resolved = Wav2Vec2Arch.from_dict(
        {"model_type": "wavlm" if wavlm else "wav2vec2", "params": arch, "normalize_waveform": False}
    )
    enc = Wav2Vec2Encoder(resolved, layer, state=full.state_dict())
    x = torch.randn(2, 16_000) * 0.3
    with torch.no_grad():
        out = enc(x)
    ref = reference_layer(full, x, layer)
    assert out.shape == ref.shape == (2, enc.num_frames(16_000), 48)
    assert (out - ref).abs().max().item() < 1e-5


def test_truncation_removes_upper_layers() -> None:
    arch = tiny_arch(4)
    full = full_model(arch)
    enc = build_ssl_encoder(SSLConfig(family="wav2vec2", arch=arch, layer=1))
    assert isinstance(enc, Wav2Vec2Encoder)
    assert len(enc.layers) == 1 and enc.total_layers == 4
    assert not any(
        name.startswith(("layers.1.", "layers.2.", "layers.3.")) for name, _ in enc.named_parameters()
    )
    upper = sum(p.numel() for layer in full.encoder.transformer.layers[1:] for p in layer.parameters())
    n_enc = sum(p.numel() for p in enc.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    # Everything above layer 1 is gone (the final LayerNorm of a post-norm model too; weight norm baked).
    assert n_enc <= n_full - upper
    assert n_enc >= n_full - upper - 2 * 48 - 16  # only the unused final norm / weight-norm gains differ


def test_layer_out_of_range() -> None:
    with pytest.raises(SSLWeightsError, match=r"1\.\.4"):
        build_ssl_encoder(SSLConfig(family="wav2vec2", arch=tiny_arch(4), layer=5))


def test_unknown_arch_key_is_a_clear_error() -> None:
    with pytest.raises(SSLWeightsError, match="encoder_num_layerz"):
        build_ssl_encoder(SSLConfig(family="wav2vec2", arch={"encoder_num_layerz": 3}, layer=1))


def test_normalize_waveform_matches_torchaudio_bundle_wrapper() -> None:
    from torchaudio.pipelines._wav2vec2.utils import _extend_model

    arch = tiny_arch(3, layer_norm_first=True)
    full = full_model(arch)
    wrapped = _extend_model(full, normalize_waveform=True)
    enc = build_ssl_encoder(SSLConfig(family="wav2vec2", arch=arch, layer=2, normalize_waveform=True))
    assert isinstance(enc, Wav2Vec2Encoder)
    enc.load_state_dict(Wav2Vec2Encoder(enc.arch, 2, state=full.state_dict()).state_dict())
    x = torch.randn(1, 8_000) * 0.05 + 0.01
    with torch.no_grad():
        out = enc(x)
        ref = wrapped.extract_features(x, num_layers=2)[0][-1]
    assert (out - ref).abs().max().item() < 1e-4


def test_frozen_encoder_stays_in_eval_mode_without_gradients() -> None:
    enc = build_ssl_encoder(SSLConfig(family="wav2vec2", arch=tiny_arch(2), layer=2))
    parent = nn.Sequential(enc)
    parent.train()
    assert not enc.training and all(not m.training for m in enc.modules())
    assert all(not p.requires_grad for p in enc.parameters())
    trainable = build_ssl_encoder(SSLConfig(family="wav2vec2", arch=tiny_arch(2), layer=2, frozen=False))
    nn.Sequential(trainable).train()
    assert trainable.training and all(p.requires_grad for p in trainable.parameters())


def test_family_none_has_no_encoder() -> None:
    with pytest.raises(ValueError, match="none"):
        build_ssl_encoder(SSLConfig(family="none"))


# ----------------------------------------------------------------------------- weight sources
def test_state_dict_file_with_arch(tmp_path: Path) -> None:
    arch = tiny_arch(3)
    full = wav2vec2_model(
        **Wav2Vec2Arch.from_dict(
            {"model_type": "wav2vec2", "params": arch, "normalize_waveform": False}
        ).params,
        aux_num_out=5,
    ).eval()
    path = tmp_path / "w2v.pth"
    torch.save({"state_dict": full.state_dict()}, path)  # an ASR model: its aux head is dropped
    enc = build_ssl_encoder(SSLConfig(family="wav2vec2", checkpoint=str(path), arch=arch, layer=2))
    x = torch.randn(1, 6_400)
    with torch.no_grad():
        assert torch.allclose(enc(x), reference_layer(full, x, 2), atol=1e-5)


def test_state_dict_file_needs_an_architecture(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(full_model(tiny_arch(2)).state_dict(), path)
    with pytest.raises(SSLWeightsError, match="ssl.arch"):
        build_ssl_encoder(SSLConfig(family="wav2vec2", checkpoint=str(path), layer=1))


def test_state_dict_of_another_architecture_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save(full_model(tiny_arch(2)).state_dict(), path)
    wider = dict(tiny_arch(2), encoder_embed_dim=64)
    with pytest.raises(SSLWeightsError, match="do not fit"):
        build_ssl_encoder(SSLConfig(family="wav2vec2", checkpoint=str(path), arch=wider, layer=1))


def test_missing_and_corrupt_checkpoint_files(tmp_path: Path) -> None:
    with pytest.raises(SSLWeightsError, match="does not exist"):
        build_ssl_encoder(
            SSLConfig(family="wav2vec2", checkpoint=str(tmp_path / "nope.pt"), arch=tiny_arch(2), layer=1)
        )
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(SSLWeightsError, match="not a readable"):
        build_ssl_encoder(SSLConfig(family="wav2vec2", checkpoint=str(bad), arch=tiny_arch(2), layer=1))


@pytest.fixture
def tiny_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, nn.Module]:
    """A real torchaudio Wav2Vec2Bundle with a tiny architecture, its weights in a scratch hub cache."""
    from torchaudio.pipelines._wav2vec2.impl import Wav2Vec2Bundle

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    arch = tiny_arch(3, layer_norm_first=True)
    params = Wav2Vec2Arch.from_dict(
        {"model_type": "wav2vec2", "params": arch, "normalize_waveform": False}
    ).params
    bundle = Wav2Vec2Bundle("samos_tiny_test.pth", dict(params, aux_num_out=None), 16_000, True, "Wav2Vec2")
    monkeypatch.setattr(torchaudio.pipelines, "SAMOS_TINY_TEST", bundle, raising=False)
    full = wav2vec2_model(**params, aux_num_out=None).eval()
    return "SAMOS_TINY_TEST", full


def test_bundle_missing_from_cache_says_how_to_get_it(tiny_bundle: tuple[str, nn.Module]) -> None:
    name, _ = tiny_bundle
    with pytest.raises(SSLWeightsError) as err:
        build_ssl_encoder(SSLConfig(family="wav2vec2", bundle=name, layer=2))
    msg = str(err.value)
    assert str(bundle_weights_path(name)) in msg and "curl" in msg and "nothing is downloaded" in msg


def test_bundle_from_cache(tiny_bundle: tuple[str, nn.Module]) -> None:
    from torchaudio.pipelines._wav2vec2.utils import _extend_model

    name, full = tiny_bundle
    path = bundle_weights_path(name)
    path.parent.mkdir(parents=True)
    # torchaudio's published files hold the positional conv's weight norm as legacy weight_g / weight_v
    legacy = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in full.state_dict().items()
    }
    assert "encoder.transformer.pos_conv_embed.conv.weight_g" in legacy
    torch.save(legacy, path)
    enc = build_ssl_encoder(SSLConfig(family="wav2vec2", bundle=name, layer=2))
    assert isinstance(enc, Wav2Vec2Encoder) and enc.normalize_waveform and len(enc.layers) == 2
    x = torch.randn(1, 8_000) * 0.2
    with torch.no_grad():
        ref = _extend_model(full, normalize_waveform=True).extract_features(x, num_layers=2)[0][-1]
        assert torch.allclose(enc(x), ref, atol=1e-4)


def test_unknown_bundle_and_family_mismatch() -> None:
    with pytest.raises(SSLWeightsError, match="not a torchaudio"):
        resolve_wav2vec2(SSLConfig(family="wav2vec2", bundle="NOT_A_BUNDLE", layer=1), load_weights=False)
    with pytest.raises(SSLWeightsError, match="WavLM"):
        resolve_wav2vec2(SSLConfig(family="wav2vec2", bundle="WAVLM_BASE", layer=1), load_weights=False)
    arch, state = resolve_wav2vec2(
        SSLConfig(family="wav2vec2", bundle="WAV2VEC2_XLSR_2B", layer=8), load_weights=False
    )
    assert state is None and arch.params["encoder_embed_dim"] == 1920 and arch.normalize_waveform


def test_hugging_face_folder(tmp_path: Path) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    hf_cfg = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(32,) * 7,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        conv_bias=True,
    )
    hf = Wav2Vec2Model(hf_cfg).eval()
    folder = tmp_path / "hf"
    hf.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True}))
    enc = build_ssl_encoder(SSLConfig(family="wav2vec2", checkpoint=str(folder), layer=2))
    assert isinstance(enc, Wav2Vec2Encoder) and len(enc.layers) == 2 and enc.total_layers == 4
    assert enc.normalize_waveform
    x = torch.randn(1, 8_000) * 0.2
    x = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5)
    raw = build_ssl_encoder(
        SSLConfig(family="wav2vec2", checkpoint=str(folder), layer=2, normalize_waveform=False)
    )
    with torch.no_grad():
        ref = hf(x, output_hidden_states=True).hidden_states[2]
        assert (raw(x) - ref).abs().max().item() < 1e-4


def test_hugging_face_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SSLWeightsError, match="config.json"):
        build_ssl_encoder(SSLConfig(family="wav2vec2", checkpoint=str(tmp_path / "empty"), layer=1))


# ------------------------------------------------------------------------------------- distillmos
@pytest.fixture(scope="module")
def distillmos_original() -> Any:
    from distillmos import ConvTransformerSQAModel

    return ConvTransformerSQAModel().eval()


def _original_layers(orig: Any, x: torch.Tensor, layers: int) -> torch.Tensor:
    """distillmos's own modules up to transformer layer ``layers`` on a 7.68 s input."""
    tp = orig.transformer_pool_attn
    x = x / (x.abs().amax(dim=1, keepdim=True) + 1e-8)
    f = orig.cnn(x).permute(0, 2, 1)
    f = tp.norm_input(f.transpose(1, 2)).transpose(1, 2)
    tw = tp.transformer
    f = tw.position_encoding(tw.linear_proj(tw.norm(f.transpose(1, 2)).transpose(1, 2)))
    for layer in tw.transformer_encoder.layers[:layers]:
        f = layer(f)
    return f


def test_distillmos_parity_on_768s(distillmos_original: Any) -> None:
    x = speechlike(7.68, seed=1) + 0.01 * torch.randn(1, 122_880)
    enc = DistillMOSEncoder(DISTILLMOS_LAYERS)
    tp = distillmos_original.transformer_pool_attn
    with torch.no_grad():
        ref = distillmos_original(x).squeeze(-1)
        feats = enc(x)
        pooled = tp.pool(tp.norm_trans(feats.transpose(1, 2)).transpose(1, 2)).squeeze(-1)
        mos = 1 + 4 * torch.sigmoid(pooled)
    assert feats.shape == (1, 384, 200)
    assert (mos - ref).abs().max().item() < 1e-4
    assert 1.0 < ref.item() < 5.0


def test_distillmos_lower_layer_equals_original_intermediate(distillmos_original: Any) -> None:
    x = speechlike(7.68, seed=3)
    enc = build_ssl_encoder(SSLConfig(family="distillmos", layer=3))
    assert isinstance(enc, DistillMOSEncoder) and len(enc.layers) == 3
    with torch.no_grad():
        out = enc(x)
        ref = _original_layers(distillmos_original, x, 3)
    assert (out - ref).abs().max().item() < 1e-4


@pytest.mark.parametrize("samples", [160, 3_200, 16_000 + 123, 160_000])
def test_distillmos_any_length(samples: int) -> None:
    enc = DistillMOSEncoder(2)
    with torch.no_grad():
        out = enc(torch.randn(1, samples) * 0.1)
    assert out.shape == (1, enc.num_frames(samples), 200)
    assert torch.isfinite(out).all()


def test_distillmos_layer_mix_mean_is_the_mean_of_the_original_layers(distillmos_original: Any) -> None:
    x = speechlike(7.68, seed=5)
    enc = build_ssl_encoder(SSLConfig(family="distillmos", layer=3, layer_mix="mean"))
    assert enc.describe() == {"kind": "distillmos", "layer": 3, "layer_mix": "mean"}
    with torch.no_grad():
        out = enc(x)
        ref = sum(_original_layers(distillmos_original, x, k) for k in (1, 2, 3)) / 3
        last = _original_layers(distillmos_original, x, 3)
    assert (out - ref).abs().max().item() < 1e-4
    assert (out - last).abs().max().item() > 1e-2  # a different feature, not the last layer again


def test_wav2vec2_layer_mix_mean_is_the_mean_of_intermediate_layers() -> None:
    arch = tiny_arch(4)
    full = full_model(arch)
    resolved = Wav2Vec2Arch.from_dict({"model_type": "wav2vec2", "params": arch, "normalize_waveform": False})
    enc = Wav2Vec2Encoder(resolved, 3, layer_mix="mean", state=full.state_dict())
    x = torch.randn(1, 16_000) * 0.3
    with torch.no_grad():
        out = enc(x)
        feats, _ = full.extract_features(x, num_layers=3)
    assert (out - torch.stack(feats).mean(0)).abs().max().item() < 1e-5
    assert enc.describe()["layer_mix"] == "mean"
    assert "layer_mix" not in Wav2Vec2Encoder(resolved, 3).describe()  # older descriptions unchanged


def test_unknown_layer_mix_is_a_clear_error() -> None:
    with pytest.raises(SSLWeightsError, match="layer_mix must be one of last, mean"):
        DistillMOSEncoder(2, layer_mix="max", load_weights=False)


def test_distillmos_rejects_bad_layer() -> None:
    with pytest.raises(SSLWeightsError, match=r"1\.\.7"):
        DistillMOSEncoder(8)
