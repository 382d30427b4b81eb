"""Torch dataset over a rated manifest: load, downmix, resample to both model rates, repeat-crop.

Each item is one clip, read with :func:`samos.audio.load_audio` (any rate, any channel count),
resampled once to 16 kHz (SSL branch) and 48 kHz (spectrogram branch) by
:func:`samos.audio.model_input`, then repeat-cropped (:func:`samos.audio.repeat_crop`) to
``crop_seconds`` as the paper trains (short clips are tiled, long ones cut).

Crops:
- ``random_crop=True``: a fresh start per epoch, drawn from ``(seed, epoch, index)`` (call
  :meth:`RatedAudioDataset.set_epoch`), so runs are reproducible and resumable;
- ``random_crop=False``: one deterministic start per clip, derived from the sha256 of its file.
  Training uses this whenever SSL features are cached: the cached features then stay valid for every
  epoch (and for step 2), at the price of always seeing the same 10 s of a longer clip.

A clip that cannot be loaded (vanished, corrupt, silent) does not stop an epoch: the item comes
back as a skip record, :func:`collate` drops it and reports it in ``batch["skipped"]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from samos.audio import RATE_RATIO, SSL_RATE, AudioError, load_audio, model_input, repeat_crop
from samos.data.cache import FeatureCache, feature_key, file_sha256
from samos.data.manifest import Manifest


def deterministic_start(n: int, length: int, key: str) -> int:
    """A start in ``[0, n - length]`` fixed by ``key`` (0 when the clip is not longer than ``length``)."""
    if n <= length:
        return 0
    h = int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)
    return h % (n - length + 1)


class RatedAudioDataset(Dataset):
    """``manifest`` items as dicts ``{wave16 [T], wave48 [3T], feats [F, D]?, mos, std, index}``.

    ``crop_seconds``: training length (None keeps each clip whole, tiled up to ``min_samples``).
    ``features``: ``(cache, encoder_id)``: return cached SSL features of the crop instead of
    ``wave16`` (the crop is then deterministic); a clip missing from the cache is skipped.
    ``need_wave16`` / ``need_wave48``: drop a view the model does not use.
    """

    def __init__(
        self,
        manifest: Manifest,
        crop_seconds: float | None,
        *,
        random_crop: bool = False,
        seed: int = 0,
        min_samples: int = 1,
        features: tuple[FeatureCache, dict[str, Any]] | None = None,
        need_wave16: bool = True,
        need_wave48: bool = True,
    ) -> None:
        self.manifest = manifest
        self.crop = None if crop_seconds is None else max(1, int(round(crop_seconds * SSL_RATE)))
        self.random_crop = random_crop and features is None
        self.seed = seed
        self.epoch = 0
        self.min_samples = max(1, int(min_samples))
        self.features = features
        self.need_wave16 = need_wave16 and features is None
        self.need_wave48 = need_wave48

    def __len__(self) -> int:
        return len(self.manifest)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def crop_of(self, index: int, n16: int) -> tuple[int, int]:
        """``(start, length)`` in 16 kHz samples of item ``index`` whose clip has ``n16`` samples."""
        length = self.crop if self.crop is not None else max(n16, self.min_samples)
        if self.random_crop and n16 > length:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            return int(rng.integers(0, n16 - length + 1)), length
        return deterministic_start(n16, length, file_sha256(self.manifest[index].path)), length

    def load_views(self, index: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(wave16 ``[L]``, wave48 ``[3L]``, start, L) of item ``index``; raises AudioError."""
        item = self.manifest[index]
        audio, sr = load_audio(item.path)
        views = model_input(audio, sr)
        n16 = len(views.wave16)
        if n16 == 0:
            raise AudioError(f"{item.path}: too short to resample")
        start, length = self.crop_of(index, n16)
        w16 = repeat_crop(views.wave16, length, start)
        w48 = repeat_crop(views.wave48, length * RATE_RATIO, start * RATE_RATIO)
        return w16, w48, start, length

    def feature_key(self, index: int, start: int, length: int) -> str:
        assert self.features is not None
        return feature_key(file_sha256(self.manifest[index].path), self.features[1], start, length)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.manifest[index]
        try:
            w16, w48, start, length = self.load_views(index)
            feats = None
            if self.features is not None:
                key = self.feature_key(index, start, length)
                feats = self.features[0].get(key)
                if feats is None:
                    return {"skip": (str(item.path), "not_in_feature_cache")}
        except (AudioError, OSError) as e:
            return {"skip": (str(item.path), f"unreadable_at_load: {str(e)[:120]}")}
        out: dict[str, Any] = {
            "index": index,
            "mos": float(item.mos),
            "std": float(item.std) if item.std is not None else float("nan"),
        }
        if self.need_wave16:
            out["wave16"] = torch.from_numpy(np.ascontiguousarray(w16))
        if self.need_wave48:
            out["wave48"] = torch.from_numpy(np.ascontiguousarray(w48))
        if feats is not None:
            out["feats"] = torch.from_numpy(np.asarray(feats, dtype=np.float32))
        return out


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack good items; ``skipped``: ``[(path, reason)]`` of the ones that failed to load.

    Items must share one length (a fixed crop, or batch size 1 for whole clips).
    """
    good = [b for b in batch if "skip" not in b]
    out: dict[str, Any] = {"skipped": [b["skip"] for b in batch if "skip" in b], "size": len(good)}
    if not good:
        return out
    out["index"] = torch.tensor([b["index"] for b in good], dtype=torch.long)
    out["mos"] = torch.tensor([b["mos"] for b in good], dtype=torch.float32)
    out["std"] = torch.tensor([b["std"] for b in good], dtype=torch.float32)
    for k in ("wave16", "wave48", "feats"):
        if k in good[0]:
            out[k] = torch.stack([b[k] for b in good])
    return out
