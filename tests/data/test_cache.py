"""The SSL feature cache: hits and misses, keys, atomic writes, concurrent access, dataset use."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from samos.config import SSLConfig
from samos.data.cache import CacheError, FeatureCache, encoder_identity, feature_key, file_sha256
from samos.data.dataset import RatedAudioDataset
from samos.data.manifest import Item, Manifest
from samos.model.ssl import build_ssl_encoder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_helpers import TINY_MODEL  # noqa: E402

torch.set_num_threads(1)
TINY_ARCH = TINY_MODEL["ssl"]["arch"]  # the training tests' tiny random wav2vec2


def tiny_encoder(layer: int = 1, seed: int = 0):  # noqa: ANN201
    torch.manual_seed(seed)
    cfg = SSLConfig(family="wav2vec2", arch=TINY_ARCH, layer=layer)
    return cfg, build_ssl_encoder(cfg)


def test_put_get_counts_and_float16(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    key = feature_key("a" * 64, {"family": "x"}, 0, 16000)
    assert cache.get(key) is None
    feats = np.random.default_rng(0).standard_normal((49, 16)).astype(np.float32)
    cache.put(key, feats)
    got = cache.get(key)
    assert got is not None and got.dtype == np.float16 and got.shape == (49, 16)
    np.testing.assert_allclose(got, feats, atol=2e-3, rtol=1e-3)
    assert (cache.stats.hits, cache.stats.misses, cache.stats.writes) == (1, 1, 1)
    assert "1 hits, 1 misses" in str(cache.stats)
    assert not list((tmp_path / "c").rglob("*.tmp"))  # atomic: no leftovers

    exact = FeatureCache(tmp_path / "c32", dtype="float32")
    exact.put(key, feats)
    np.testing.assert_array_equal(exact.get(key), feats)


def test_key_changes_with_audio_encoder_layer_and_crop(tmp_path: Path) -> None:
    cfg1, enc1 = tiny_encoder(layer=1, seed=0)
    cfg2, enc2 = tiny_encoder(layer=2, seed=0)
    _, enc1b = tiny_encoder(layer=1, seed=1)  # same config, other random weights
    id1, id2, id1b = encoder_identity(cfg1, enc1), encoder_identity(cfg2, enc2), encoder_identity(cfg1, enc1b)
    assert id1 == encoder_identity(cfg1, enc1)
    assert id1["layer"] == 1 and id2["layer"] == 2
    assert id1["weights_sha256"] != id1b["weights_sha256"]
    base = feature_key("a" * 64, id1, 0, 16000)
    assert base == feature_key("a" * 64, id1, 0, 16000)
    others = {
        feature_key("b" * 64, id1, 0, 16000),  # audio
        feature_key("a" * 64, id2, 0, 16000),  # layer
        feature_key("a" * 64, id1b, 0, 16000),  # weights
        feature_key("a" * 64, id1, 160, 16000),  # crop start
        feature_key("a" * 64, id1, 0, 32000),  # crop length
    }
    assert base not in others and len(others) == 5


def test_file_sha_tracks_content(tmp_path: Path) -> None:
    p = tmp_path / "x.wav"
    sf.write(p, np.zeros(1600, np.float32), 16000)
    a = file_sha256(p)
    sf.write(p, np.ones(1600, np.float32) * 0.1, 16000)
    assert file_sha256(p) != a


def test_corrupt_entry_is_a_miss_and_recomputed(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = "ab" + "0" * 62
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"\x93NUMPY garbage")
    calls = []
    out = cache.get_or_compute(key, lambda: calls.append(1) or np.ones((2, 3), np.float32))
    assert calls == [1] and out.shape == (2, 3) and cache.stats.corrupt == 1
    assert cache.get(key) is not None


def test_concurrent_writers_and_readers_never_see_partial_files(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    key = feature_key("c" * 64, "enc", 0, 1)
    big = (np.arange(200_000, dtype=np.float32) % 1000).reshape(-1, 100)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(5):
                FeatureCache(tmp_path).put(key, big)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    def reader() -> None:
        c = FeatureCache(tmp_path)
        for _ in range(50):
            got = c.get(key)
            if got is not None and got.shape != big.shape:
                errors.append(AssertionError(f"partial read {got.shape}"))

    threads = [threading.Thread(target=writer) for _ in range(3)] + [
        threading.Thread(target=reader) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.stats.corrupt == 0
    np.testing.assert_array_equal(cache.get(key), big.astype(np.float16))


def test_values_beyond_float16_stay_float32(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.put("ff" + "1" * 62, np.array([[1e6, -2.0]], np.float32))
    got = cache.get("ff" + "1" * 62)
    assert got is not None and got.dtype == np.float32 and got[0, 0] == 1e6


def test_unusable_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError):
        FeatureCache(tmp_path / "file")


def test_dataset_reads_cached_features_and_skips_uncached(tmp_path: Path) -> None:
    cfg, enc = tiny_encoder()
    enc_id = encoder_identity(cfg, enc)
    items = []
    for i in range(2):
        sf.write(
            tmp_path / f"{i}.wav",
            np.random.default_rng(i).uniform(-0.3, 0.3, 24000).astype(np.float32),
            24000,
        )
        items.append(Item(path=tmp_path / f"{i}.wav", mos=3.0))
    cache = FeatureCache(tmp_path / "cache")
    ds = RatedAudioDataset(Manifest(items), crop_seconds=0.5, random_crop=True, features=(cache, enc_id))
    assert not ds.random_crop  # caching forces the deterministic crop
    w16, _, start, length = ds.load_views(0)
    with torch.no_grad():
        feats = enc(torch.from_numpy(w16)[None])[0].numpy()
    cache.put(ds.feature_key(0, start, length), feats)
    out = ds[0]
    assert "wave16" not in out and out["feats"].shape == feats.shape
    np.testing.assert_allclose(out["feats"].numpy(), feats, atol=5e-3, rtol=1e-2)
    assert ds[1] == {"skip": (str(items[1].path), "not_in_feature_cache")}
