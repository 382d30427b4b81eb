"""On-disk cache of frozen SSL features: computed once, reused by every later epoch and by step 2.

Key = sha256 over (sha256 of the audio file's bytes, encoder identity, crop). The encoder identity
holds the family, bundle / checkpoint name, layer, architecture and a sha256 of the encoder's
weights, so a different layer, checkpoint or random initialisation never hits a stale entry.
The crop is ``(start, length)`` in 16 kHz samples of the repeat-cropped clip.

Layout: ``<root>/<key[:2]>/<key>.npy``: one ``[frames, dim]`` array per clip crop, float16 by
default (a crop whose values exceed float16's range is kept in float32). Writes go to a temporary
file in the same folder followed by ``os.replace``, so a reader (another process, another rank)
sees either nothing or a complete file. A corrupt entry counts as a miss and is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

CacheDtype = Literal["float16", "float32"]
_CHUNK = 1 << 20
_F16_MAX = float(np.finfo(np.float16).max)


class CacheError(ValueError):
    """A cache folder that cannot be used (not writable, not a folder)."""


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    corrupt: int = 0

    def __str__(self) -> str:
        total = self.hits + self.misses
        rate = 100.0 * self.hits / total if total else 0.0
        return f"{self.hits} hits, {self.misses} misses ({rate:.0f}% hit rate), {self.writes} written"


_file_sha_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (memoised per path, size and mtime within this process)."""
    p = Path(path)
    st = p.stat()
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key in _file_sha_memo:
        return _file_sha_memo[memo_key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    _file_sha_memo[memo_key] = digest
    return digest


def state_dict_sha256(state: Any) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes and bytes, in key order)."""
    import torch

    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def encoder_identity(ssl_cfg: Any, encoder: Any) -> dict[str, Any]:
    """What makes two encoders' features interchangeable: config source, layer, arch, weights.

    ``ssl_cfg``: a :class:`samos.config.SSLConfig`; ``encoder``: the built ``SSLEncoder`` module.
    """
    describe = encoder.describe() if hasattr(encoder, "describe") else {}
    return {
        "family": ssl_cfg.family,
        "bundle": ssl_cfg.bundle,
        "checkpoint": Path(ssl_cfg.checkpoint).name if ssl_cfg.checkpoint else None,
        "layer": int(ssl_cfg.layer),
        "describe": describe,
        "weights_sha256": state_dict_sha256(encoder.state_dict()),
    }


def feature_key(audio_sha256: str, encoder_id: dict[str, Any] | str, start: int, length: int) -> str:
    """The cache key of one crop's features (hex sha256)."""
    enc = encoder_id if isinstance(encoder_id, str) else json.dumps(encoder_id, sort_keys=True, default=str)
    blob = json.dumps({"audio": audio_sha256, "encoder": enc, "crop": [int(start), int(length)], "v": 1})
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class FeatureCache:
    """Content-addressed ``.npy`` store with hit/miss counters. Safe for concurrent readers/writers."""

    root: Path
    dtype: CacheDtype = "float16"
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        self.root = Path(self.root).expanduser()
        if self.root.exists() and not self.root.is_dir():
            raise CacheError(f"feature cache {self.root} exists and is not a folder")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"feature cache {self.root}: cannot create ({e})") from None
        if not os.access(self.root, os.W_OK):
            raise CacheError(f"feature cache {self.root} is not writable")

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The stored array, or None (a miss; a corrupt file counts as a miss)."""
        p = self.path(key)
        try:
            arr = np.load(p, allow_pickle=False)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, ValueError, EOFError):
            self.stats.corrupt += 1
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return arr

    def put(self, key: str, features: np.ndarray) -> Path:
        """Store ``features`` (``[frames, dim]``) atomically in the cache dtype."""
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = np.ascontiguousarray(features, dtype=np.float32)
        if self.dtype == "float16" and (arr.size == 0 or float(np.abs(arr).max()) <= _F16_MAX):
            arr = arr.astype(np.float16)  # values beyond float16's range stay float32 (no inf)
        fd, tmp = tempfile.mkstemp(prefix=f".{key[:8]}.", suffix=".tmp", dir=p.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, arr, allow_pickle=False)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stats.writes += 1
        return p

    def get_or_compute(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array, else ``compute()`` stored and returned in the cache dtype."""
        got = self.get(key)
        if got is not None:
            return got
        return np.load(self.put(key, compute()), allow_pickle=False)
