"""RatedAudioDataset: any rate / channel count / length in, fixed-length aligned 16 + 48 kHz views out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from samos.data.cache import file_sha256
from samos.data.dataset import RatedAudioDataset, collate, deterministic_start
from samos.data.manifest import Item, Manifest, validate

torch.set_num_threads(1)
RATES = (8000, 11025, 16000, 22050, 24000, 44100, 48000)


def speechy(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def make_manifest(tmp_path: Path, specs: list[tuple[str, float, int, int]]) -> Manifest:
    items = []
    for name, seconds, sr, ch in specs:
        x = speechy(seconds, sr)
        if ch == 2:
            x = np.stack([x, 0.5 * x], axis=1)
        sf.write(tmp_path / name, x, sr)
        items.append(Item(path=tmp_path / name, mos=3.0))
    return validate(Manifest(items))


def test_every_rate_gives_aligned_views_of_the_crop_length(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, [(f"r{sr}.wav", 0.7, sr, 1) for sr in RATES])
    ds = RatedAudioDataset(m, crop_seconds=0.5)
    for i in range(len(ds)):
        out = ds[i]
        assert out["wave16"].shape == (8000,) and out["wave48"].shape == (24000,)
        assert out["wave16"].dtype == torch.float32
        assert torch.isfinite(out["wave16"]).all() and out["wave16"].abs().max() > 0.05


def test_short_clip_is_tiled_and_long_clip_cut(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, [("short.wav", 0.2, 22050, 1), ("long.wav", 40.0, 8000, 1)])
    ds = RatedAudioDataset(m, crop_seconds=1.0)
    short = ds[0]["wave16"].numpy()
    n = 3200  # 0.2 s at 16 kHz
    np.testing.assert_allclose(short[:n], short[n : 2 * n], atol=1e-6)
    w16, w48, start, length = ds.load_views(1)
    assert length == 16000 and 0 <= start <= 40 * 16000 - 16000
    assert len(w16) == 16000 and len(w48) == 48000


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, [("st.wav", 0.5, 16000, 2), ("mono.wav", 0.5, 16000, 1)])
    ds = RatedAudioDataset(m, crop_seconds=0.5)
    np.testing.assert_allclose(ds[0]["wave16"].numpy(), 0.75 * ds[1]["wave16"].numpy(), atol=1e-4)


def test_deterministic_crop_is_stable_and_random_crop_follows_seed_and_epoch(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, [("long.wav", 6.0, 16000, 1)])
    det = RatedAudioDataset(m, crop_seconds=1.0)
    starts = set()
    for epoch in range(3):
        det.set_epoch(epoch)
        starts.add(det.crop_of(0, 96000))
    assert len(starts) == 1
    assert starts.pop() == (deterministic_start(96000, 16000, file_sha256(m[0].path)), 16000)

    rnd = RatedAudioDataset(m, crop_seconds=1.0, random_crop=True, seed=3)
    picks = []
    for epoch in range(4):
        rnd.set_epoch(epoch)
        picks.append(rnd.crop_of(0, 96000)[0])
    assert len(set(picks)) > 1
    again = RatedAudioDataset(m, crop_seconds=1.0, random_crop=True, seed=3)
    again.set_epoch(2)
    assert again.crop_of(0, 96000)[0] == picks[2]


def test_whole_clip_mode_tiles_up_to_min_samples(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, [("a.wav", 0.1, 16000, 1), ("b.wav", 1.0, 16000, 1)])
    ds = RatedAudioDataset(m, crop_seconds=None, min_samples=4000)
    assert ds[0]["wave16"].shape == (4000,)
    assert ds[1]["wave16"].shape == (16000,)


def test_file_broken_after_validation_is_skipped_not_fatal(tmp_path: Path) -> None:
    m = make_manifest(tmp_path, [(f"f{i}.wav", 0.5, 16000, 1) for i in range(4)])
    (tmp_path / "f1.wav").unlink()
    (tmp_path / "f2.wav").write_bytes(b"not audio at all")
    ds = RatedAudioDataset(m, crop_seconds=0.5, need_wave16=False)
    batches = list(DataLoader(ds, batch_size=4, collate_fn=collate))
    (b,) = batches
    assert b["size"] == 2 and b["wave48"].shape == (2, 24000) and "wave16" not in b
    assert b["index"].tolist() == [0, 3]
    assert sorted(Path(p).name for p, _ in b["skipped"]) == ["f1.wav", "f2.wav"]
    assert all(reason.startswith("unreadable_at_load") for _, reason in b["skipped"])


def test_collate_of_only_failures() -> None:
    out = collate([{"skip": ("x.wav", "unreadable_at_load: gone")}])
    assert out["size"] == 0 and out["skipped"] == [("x.wav", "unreadable_at_load: gone")]


@pytest.mark.parametrize("seconds", [0.2, 40.0])
def test_views_stay_aligned_at_48k(tmp_path: Path, seconds: float) -> None:
    m = make_manifest(tmp_path, [("x.wav", seconds, 44100, 1)])
    ds = RatedAudioDataset(m, crop_seconds=0.5)
    out = ds[0]
    # the 48 kHz view decimated by 3 tracks the 16 kHz view (same audio, same crop)
    w16, w48 = out["wave16"].numpy(), out["wave48"].numpy()
    assert np.corrcoef(w16[100:-100], w48[::3][100:-100])[0, 1] > 0.9
