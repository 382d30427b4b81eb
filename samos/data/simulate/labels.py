"""Pseudo-MOS labels for simulated clips: a 16 kHz speech teacher plus an E-model bandwidth term.

Rationale (docs/DATA.md has the full argument and the checks against human ratings):

- Distill-MOS agrees best with listeners of the label sources measured here (PCC 0.84-0.88), but it
  hears 16 kHz audio only, so it is blind to everything above 8 kHz: a 20 kHz and an 8 kHz version
  of a clip get the same score.
- The ITU-T E-model family gives published, listening-test-derived ceilings of the transmission
  rating R per audio bandwidth on ONE common scale: narrow band (300-3400 Hz) R = 93.2 (G.107),
  wide band (50-7000 Hz) R = 129 (G.107.1), full band (20-20000 Hz) R = 148 (G.107.2); MOS follows
  from R / 1.48 with the G.107 R-to-MOS curve. In between we interpolate linearly in log frequency.
- Combination: the teacher's MOS is read as an R on the wide-band scale (G.107.1: R_WB = 1.29 R_NB,
  with R_NB the G.107 inverse of the MOS); the bandwidth above what the teacher hears (8 kHz) adds the
  E-model's credit ``R_max(bw) - R_max(8 kHz)``; the sum is on the full-band scale, and
  ``MOS = MOS_G107(R_FB / 1.48)``. Below 8 kHz nothing is added: the teacher already hears the loss.

No weight here was fitted to any rated set; the P.835 ratings are only used to check (``labelcheck``).

Optional second source (``labels.bak_weight`` W > 0): DNSMOS P.835's background-noise score BAK
(speechmos, MIT) is blended with the teacher before the bandwidth term, ``combine((1 - W) T + W BAK,
bw)``. The teacher alone ranks the enhancement outputs of vmc24t3 poorly (PCC 0.53) and BAK alone ranks
P.835 poorly (0.60); the weight is chosen on both sets' human ratings (docs/DATA.md, "A second label
source").
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import SPEC_RATE, SSL_RATE, resample

R_NB_MAX = 93.2
"""G.107 default (no impairment) rating of narrow-band (300-3400 Hz) telephony."""
R_WB_FACTOR = 1.29
"""G.107.1: the wide-band scale is the narrow-band scale times 1.29 (R_WB max 129)."""
R_FB_FACTOR = 1.48
"""G.107.2: the full-band scale (R_FB max 148); MOS from R_FB / 1.48 with the G.107 curve."""
BANDWIDTH_ANCHORS = ((3_400.0, 93.2), (7_000.0, 129.0), (20_000.0, 148.0))
"""(upper band edge Hz, best achievable R on the full-band scale): G.107, G.107.1, G.107.2."""
TEACHER_BANDWIDTH_HZ = SSL_RATE / 2
"""What a 16 kHz teacher hears, Hz."""
DISTILLMOS_WINDOW = 122_880
"""Distill-MOS's window, 16 kHz samples (7.68 s): the package zero-pads shorter clips to it."""


def mos_from_r(r: float | np.ndarray) -> np.ndarray:
    """ITU-T G.107 R (narrow-band scale, 0-100) to MOS (1-4.5).

    The cubic dips just below 1 for R < 6.5; it is clamped at 1 there, as implementations do.
    """
    r = np.asarray(r, dtype=np.float64)
    mos = np.maximum(1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6, 1.0)
    return np.where(r <= 0, 1.0, np.where(r >= 100, 4.5, mos))


R_MOS_ONE = (160.0 - np.sqrt(160.0**2 - 4 * 1000.0)) / 2
"""Where the G.107 cubic comes back to MOS 1 (R = 6.52); the curve is strictly increasing above it."""
_R_GRID = np.linspace(R_MOS_ONE, 100.0, 2001)
_MOS_GRID = mos_from_r(_R_GRID)


def r_from_mos(mos: float | np.ndarray) -> np.ndarray:
    """Inverse of :func:`mos_from_r` on its increasing branch (R 6.52-100); MOS is clipped to [1, 4.5]."""
    return np.interp(np.clip(mos, 1.0, 4.5), _MOS_GRID, _R_GRID)


def r_max(bandwidth_hz: float) -> float:
    """Best achievable R (full-band scale, 0-148) of speech with this audio bandwidth (Hz):
    piecewise linear in log frequency through :data:`BANDWIDTH_ANCHORS`, flat above 20 kHz, and
    continuing the narrow-to-wide-band slope below 3.4 kHz (floor 0)."""
    f = np.log(max(bandwidth_hz, 100.0))
    xs = [np.log(b) for b, _ in BANDWIDTH_ANCHORS]
    ys = [r for _, r in BANDWIDTH_ANCHORS]
    if f < xs[0]:
        slope = (ys[1] - ys[0]) / (xs[1] - xs[0])
        return max(0.0, ys[0] + slope * (f - xs[0]))
    return float(np.interp(f, xs, ys))


def high_band_credit(bandwidth_hz: float) -> float:
    """R points the bandwidth above the teacher's 8 kHz adds (0 at or below 8 kHz)."""
    return max(0.0, r_max(bandwidth_hz) - r_max(TEACHER_BANDWIDTH_HZ))


def combine(teacher_mos: float, bandwidth_hz: float, high_band: bool = True) -> float:
    """The pseudo-MOS (1-4.5) from a 16 kHz teacher's MOS and the clip's effective bandwidth (Hz)."""
    r_fb = R_WB_FACTOR * float(r_from_mos(teacher_mos))
    if high_band:
        r_fb += high_band_credit(bandwidth_hz)
    return float(mos_from_r(r_fb / R_FB_FACTOR))


@dataclass(frozen=True)
class Label:
    """A clip's label and its components (all go to the manifest)."""

    mos: float
    teacher_mos: float
    bandwidth_hz: float
    high_band_r: float
    dnsmos_bak: float | None = None
    """DNSMOS P.835 BAK of the clip (1-5); None when not part of the label."""


class DistillMOS:
    """The Distill-MOS teacher (PyPI ``distillmos``, weights inside the package), one CPU thread.

    ``score(audio, rate)``: mono float32 ``(samples,)`` -> MOS in [1, 5]. torch and the model are
    loaded on the first score, so a run whose scores all come from the cache never loads them.

    ``whole_clip``: the package pads a clip shorter than its 7.68 s window with zeros and scores the
    padded window, so a 4 s clip is judged with 3.7 s of silence in it. With ``whole_clip`` such a
    clip is scored as it is (the same peak normalisation, encoder and head, no padding), as the
    samos SSL branch sees audio; longer clips are scored as the package does (its overlapping 7.68 s
    windows, no padding either way).
    """

    def __init__(self, threads: int = 1, whole_clip: bool = False) -> None:
        import importlib.util

        if importlib.util.find_spec("distillmos") is None or importlib.util.find_spec("torch") is None:
            raise RuntimeError(
                "the Distill-MOS teacher needs torch and distillmos (pip install 'samos[train,data]')"
            )
        self.threads = threads
        self.whole_clip = whole_clip
        self._model = None
        self._whole: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        import distillmos
        import torch

        torch.set_num_threads(self.threads)
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints where its weights came from
            self._model = distillmos.ConvTransformerSQAModel().eval()

    def score(self, audio: np.ndarray, rate: int) -> float:
        import torch

        w16 = resample(audio, rate, SSL_RATE)
        with self._lock, torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(w16))[None]
            if self.whole_clip and x.shape[1] < DISTILLMOS_WINDOW:
                return float(self._unpadded(x).item())
            if self._model is None:
                self._load()
            return float(self._model(x).item())  # type: ignore[misc]

    def _unpadded(self, x: Any) -> Any:
        """The package's model on ``x`` [1, samples] without its zero padding: samos's rebuild of its
        encoder (positions for the actual length) and its own head (``samos.model.teacher``)."""
        if self._whole is None:
            import torch

            from samos.model.ssl.distillmos import DistillMOSEncoder
            from samos.model.teacher import TeacherHead

            torch.set_num_threads(self.threads)
            self._whole = (DistillMOSEncoder(layer=7).eval(), TeacherHead())
        encoder, head = self._whole
        return head(encoder(x))


class DnsmosBak:
    """DNSMOS P.835's background-noise score (BAK, 1-5; speechmos's ONNX file, one CPU thread).

    ``score(audio, rate)``: mono float32 ``(samples,)`` -> BAK, the mean over DNSMOS's 9 s windows of
    the clip looped to 9 s (``samos.bench.peers.DnsmosP835``). Loaded on the first score.
    """

    def __init__(self) -> None:
        import importlib.util

        if importlib.util.find_spec("speechmos") is None or importlib.util.find_spec("onnxruntime") is None:
            raise RuntimeError(
                "labels.bak_weight needs speechmos and onnxruntime (pip install 'samos[bench]')"
            )
        self._model = None
        self._lock = threading.Lock()

    def score(self, audio: np.ndarray, rate: int) -> float:
        from samos.bench.peers import DnsmosP835

        with self._lock:
            if self._model is None:
                self._model = DnsmosP835()
            return self._model.p835(audio, rate)["bak"]


class TeacherCache:
    """Teacher scores on disk, keyed by the clip's content (SHA-1 of its float32 samples and rate).

    One small JSON file per clip under ``root/<2 hex>/<sha1>.json``, written atomically, so that any
    number of worker processes can share it. A clip that is made again (an interrupted run, a corpus
    rebuilt with the same seed) is not scored again.
    """

    def __init__(self, root: str | Path, teacher_name: str) -> None:
        self.root = Path(root)
        self.teacher_name = teacher_name
        self.hits = 0

    def key(self, audio: np.ndarray, rate: int) -> str:
        h = hashlib.sha1(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
        h.update(f"{rate}:{self.teacher_name}".encode())
        return h.hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> float | None:
        p = self._path(key)
        try:
            value = float(json.loads(p.read_text())["mos"])
        except (OSError, ValueError, KeyError):
            return None
        self.hits += 1
        return value

    def put(self, key: str, mos: float) -> None:
        p = self._path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"mos": mos, "teacher": self.teacher_name}))
        os.replace(tmp, p)


class Labeller:
    """Labels 48 kHz clips: teacher on the degraded clip plus the bandwidth of the speech path."""

    def __init__(
        self,
        teacher: DistillMOS | None,
        high_band: bool = True,
        cache: TeacherCache | None = None,
        bak: DnsmosBak | None = None,
        bak_weight: float = 0.0,
        bak_cache: TeacherCache | None = None,
    ) -> None:
        if not 0.0 <= bak_weight <= 1.0:
            raise ValueError(f"bak_weight must be in [0, 1], got {bak_weight!r}")
        if bak_weight > 0 and bak is None:
            raise ValueError("bak_weight > 0 needs a DnsmosBak scorer")
        self.teacher = teacher
        self.high_band = high_band
        self.cache = cache if teacher is not None else None
        self.bak = bak if bak_weight > 0 else None
        self.bak_weight = bak_weight
        self.bak_cache = bak_cache if self.bak is not None else None

    def teacher_mos(self, degraded: np.ndarray, rate: int) -> float:
        """The teacher's MOS of ``degraded`` (from the cache when this exact clip was scored before)."""
        if self.teacher is None:
            return 4.5
        return _cached(self.cache, self.teacher.score, degraded, rate)

    def label(self, degraded: np.ndarray, bandwidth_hz: float, rate: int = SPEC_RATE) -> Label:
        """``degraded``: float32 ``(samples,)`` at ``rate``; ``bandwidth_hz``: effective bandwidth of
        the speech path (source and band-limiting stages, without noise)."""
        t = self.teacher_mos(degraded, rate)
        credit = high_band_credit(bandwidth_hz) if self.high_band else 0.0
        bak = None
        blended = t
        if self.bak is not None:
            bak = _cached(self.bak_cache, self.bak.score, degraded, rate)
            blended = (1.0 - self.bak_weight) * t + self.bak_weight * bak
        mos = combine(blended, bandwidth_hz, self.high_band)
        return Label(float(np.clip(mos, 1.0, 5.0)), t, float(bandwidth_hz), credit, bak)


def _cached(
    cache: TeacherCache | None, score: Callable[[np.ndarray, int], float], audio: np.ndarray, rate: int
) -> float:
    """``score(audio, rate)``, from ``cache`` when this exact clip was scored before."""
    if cache is None:
        return score(audio, rate)
    key = cache.key(audio, rate)
    cached = cache.get(key)
    if cached is not None:
        return cached
    value = score(audio, rate)
    cache.put(key, value)
    return value
