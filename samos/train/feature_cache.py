"""Filling the frozen-SSL feature cache before training (see :mod:`samos.data.cache`): one pass of the
encoder over every clip's deterministic crops."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from samos.data.cache import FeatureCache, feature_key, file_sha256
from samos.data.dataset import RatedAudioDataset
from samos.data.manifest import SkipReport
from samos.model.samos_model import SAMOS
from samos.progress import progress
from samos.train.common import SINGLE
from samos.train.distributed import Dist


class _CropSource(Dataset):
    """16 kHz crops + cache keys of a dataset's items (for filling the cache with a DataLoader)."""

    def __init__(self, ds: RatedAudioDataset, enc_id: dict[str, Any]) -> None:
        self.ds, self.enc_id = ds, enc_id

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            w16, _, start, length = self.ds.load_views(i)
            key = feature_key(file_sha256(self.ds.manifest[i].path), self.enc_id, start, length)
        except (ValueError, OSError) as e:
            return {"skip": (str(self.ds.manifest[i].path), f"unreadable_at_load: {str(e)[:120]}")}
        return {"key": key, "wave16": torch.from_numpy(np.ascontiguousarray(w16))}


def _collate_crops(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def fill_cache(
    model: SAMOS,
    ds: RatedAudioDataset,
    cache: FeatureCache,
    enc_id: dict[str, Any],
    device: torch.device,
    batch_size: int,
    num_workers: int,
    desc: str,
    dist: Dist = SINGLE,
) -> SkipReport:
    """Compute and store the SSL features of every item's deterministic crop not yet cached.

    Under torchrun each rank fills every ``world``-th item; the atomic writes make that safe.
    """
    report = SkipReport()
    source: Dataset = _CropSource(ds, enc_id)
    if dist.enabled:
        source = Subset(source, list(range(dist.rank, len(ds), dist.world)))
    loader = DataLoader(source, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate_crops)
    model.eval()
    for batch in progress(loader, desc=desc, unit="batch", leave=False, disable=not dist.is_main):
        todo = []
        for b in batch:
            if "skip" in b:
                report.add("unreadable_at_load", *b["skip"])
            elif b["key"] in cache:
                cache.stats.hits += 1
            else:
                cache.stats.misses += 1
                todo.append(b)
        if not todo:
            continue
        by_len: dict[int, list[dict[str, Any]]] = {}
        for b in todo:
            by_len.setdefault(int(b["wave16"].shape[0]), []).append(b)
        with torch.no_grad():
            for group in by_len.values():
                w16 = torch.stack([b["wave16"] for b in group]).to(device)
                feats = model.ssl_features(w16).float().cpu().numpy()
                for b, f in zip(group, feats, strict=True):
                    cache.put(b["key"], f)
    return report
