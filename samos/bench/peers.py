"""Peer MOS predictors for the accuracy benchmark: DNSMOS P.835 (+ P.808) and Distill-MOS.

Both are run the way their authors run them, but with one CPU thread and without their file loaders:

* DNSMOS P.835 / P.808 (Microsoft, in the ``speechmos`` package): the ONNX files shipped with
  ``speechmos`` are opened directly with onnxruntime (1 intra-op and 1 inter-op thread). Audio at
  16 kHz is looped until it is at least 9.01 s long, cut into 9.01 s windows at a 1 s hop, and each
  window is scored; the P.835 raw outputs go through DNSMOS's published polynomial (non-personalised)
  and the clip score is the mean over windows. P.808 takes a 120-band log-mel spectrogram
  (n_fft 321, hop 160, ``power_to_db(ref=max)``, then ``(x + 40) / 40``) of each window minus its
  last 160 samples, exactly as in the reference code.
* Distill-MOS (``distillmos`` package, torch): ``ConvTransformerSQAModel`` with its own segmenting
  (7.68 s windows, at most 1 s hop, mean), 16 kHz input, ``torch.set_num_threads(1)``.

Every input is resampled to 16 kHz with the project's soxr filter (``samos.audio.resample``).
A ``Peer`` maps ``(audio, rate) -> {output name: MOS}``; ``PeerCache`` keeps the results on disk,
keyed by the audio file's SHA-256 and the peer's name and version, so reruns are cheap.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from samos.audio import SSL_RATE, AudioError, load_audio, resample

DNSMOS_WINDOW_S = 9.01
"""DNSMOS input length, seconds (at 16 kHz: 144,160 samples)."""
DNSMOS_HOP_S = 1.0
DNSMOS_OVRL_POLY = (-0.06766283, 1.11546468, 0.04602535)
DNSMOS_SIG_POLY = (-0.08397278, 1.22083953, 0.0052439)
DNSMOS_BAK_POLY = (-0.13166888, 1.60915514, -0.39604546)
"""DNSMOS P.835 calibration polynomials (numpy.poly1d coefficients, highest power first)."""


class PeerError(ValueError):
    """A peer that cannot run (package missing) or audio it cannot score."""


class Peer(Protocol):
    """A reference MOS predictor. ``outputs`` names what ``predict`` returns; the first is its MOS."""

    name: str
    outputs: tuple[str, ...]

    @property
    def version(self) -> str:
        """Identifies the weights (changes invalidate the cache)."""
        ...

    def predict(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        """Score one mono float32 waveform ``(samples,)`` at ``sr`` Hz; MOS units (1-5)."""
        ...


def _package_dir(package: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise PeerError(f"the peer needs the package '{package}' (pip install 'samos[{extra}]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _to16k(audio: np.ndarray, sr: int) -> np.ndarray:
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim != 1 or a.size == 0:
        raise PeerError(f"expected a non-empty mono waveform (samples,), got shape {a.shape}")
    return resample(a, int(sr), SSL_RATE)


# ------------------------------------------------------------------------------------------- DNSMOS
class DnsmosP835:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 from speechmos's ONNX files, 1 thread.

    Outputs: ``ovrl`` (P.835 overall, the MOS compared in the benchmark), ``sig``, ``bak``, ``p808``.
    """

    name: str = "dnsmos"
    outputs: tuple[str, ...] = ("ovrl", "sig", "bak", "p808")

    def __init__(self, model_dir: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        d = Path(model_dir) if model_dir else _package_dir("speechmos", "bench") / "dnsmos_models"
        self._p835_path = d / "sig_bak_ovr.onnx"
        self._p808_path = d / "model_v8.onnx"
        for p in (self._p835_path, self._p808_path):
            if not p.is_file():
                raise PeerError(f"DNSMOS model file missing: {p}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = threads
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        cpu = ["CPUExecutionProvider"]
        self._p835 = ort.InferenceSession(str(self._p835_path), sess_options=so, providers=cpu)
        self._p808 = ort.InferenceSession(str(self._p808_path), sess_options=so, providers=cpu)
        self._p835_in = self._p835.get_inputs()[0].name
        self._p808_in = self._p808.get_inputs()[0].name
        self._version: str | None = None

    @property
    def version(self) -> str:
        if self._version is None:
            sha = _file_sha256(self._p835_path)[:12] + "-" + _file_sha256(self._p808_path)[:12]
            self._version = f"dnsmos-{sha}"
        return self._version

    @staticmethod
    def windows(audio16: np.ndarray) -> list[np.ndarray]:
        """DNSMOS's segmentation of a 16 kHz clip: loop to >= 9.01 s, 9.01 s windows every 1 s."""
        n_win = int(DNSMOS_WINDOW_S * SSL_RATE)
        a = np.asarray(audio16, dtype=np.float32)
        while len(a) < n_win:
            a = np.concatenate([a, a])
        n_hops = int(np.floor(len(a) / SSL_RATE) - DNSMOS_WINDOW_S) + 1
        hop = int(DNSMOS_HOP_S * SSL_RATE)
        out = [a[i * hop : i * hop + n_win] for i in range(n_hops)]
        return [w for w in out if len(w) == n_win]

    @staticmethod
    def p808_features(window: np.ndarray) -> np.ndarray:
        """P.808 input for one window: ``(frames, 120)`` float32 log-mel, scaled as DNSMOS does."""
        import librosa

        mel = librosa.feature.melspectrogram(
            y=window[:-160], sr=SSL_RATE, n_fft=321, hop_length=160, n_mels=120
        )
        return ((librosa.power_to_db(mel, ref=np.max) + 40.0) / 40.0).T.astype(np.float32)

    @staticmethod
    def _audio16(audio: np.ndarray, sr: int) -> np.ndarray:
        a = _to16k(audio, sr)
        if not np.isfinite(a).all():
            raise PeerError("audio holds NaN/Inf samples")
        return np.clip(a, -1.0, 1.0)

    def p835(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        """The P.835 model alone (no P.808): ``sig``, ``bak``, ``ovrl``, each the mean over windows."""
        return self._scores(self._audio16(audio, sr), p808=False)

    def predict(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        return self._scores(self._audio16(audio, sr), p808=True)

    def _scores(self, a: np.ndarray, p808: bool) -> dict[str, float]:
        sig, bak, ovrl, p808s = [], [], [], []
        for w in self.windows(a):
            raw = self._p835.run(None, {self._p835_in: w[None, :]})[0][0]
            sig.append(np.polyval(DNSMOS_SIG_POLY, raw[0]))
            bak.append(np.polyval(DNSMOS_BAK_POLY, raw[1]))
            ovrl.append(np.polyval(DNSMOS_OVRL_POLY, raw[2]))
            if p808:
                p808s.append(self._p808.run(None, {self._p808_in: self.p808_features(w)[None]})[0][0][0])
        out = {"ovrl": float(np.mean(ovrl)), "sig": float(np.mean(sig)), "bak": float(np.mean(bak))}
        if p808:
            out["p808"] = float(np.mean(p808s))
        return out


# --------------------------------------------------------------------------------------- Distill-MOS
class DistillMos:
    """Distill-MOS (Stahl and Gamper, 2025) from the distillmos package, torch on 1 thread. Output ``mos``."""

    name: str = "distillmos"
    outputs: tuple[str, ...] = ("mos",)

    def __init__(self, threads: int = 1) -> None:
        try:
            import torch
            from distillmos import ConvTransformerSQAModel
            from distillmos import sqa as _sqa
        except ImportError as e:
            raise PeerError(
                f"Distill-MOS needs torch and distillmos (pip install 'samos[train]'): {e}"
            ) from None
        torch.set_num_threads(threads)
        self._torch = torch
        with contextlib.redirect_stdout(io.StringIO()):  # it prints where it loaded its weights from
            self._model = ConvTransformerSQAModel().eval()
        self._weights = Path(_sqa.DEFAULT_WEIGHTS_CHKPT)
        self._version: str | None = None

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = f"distillmos-{_file_sha256(self._weights)[:12]}"
        return self._version

    def predict(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        a = _to16k(audio, sr)
        if not np.isfinite(a).all():
            raise PeerError("audio holds NaN/Inf samples")
        torch = self._torch
        with torch.inference_mode():
            y = self._model(torch.from_numpy(a)[None, :])
        return {"mos": float(y.reshape(-1)[0])}


# ------------------------------------------------------------------------------- a samos model file
class SamosOnnx:
    """A samos ONNX model file (default: the shipped ``default.onnx``) scored as is, whole clip, 1 thread.

    Outputs ``mos`` and ``std``: the graph's RAW outputs, before the file's calibration (the benchmark
    fits and applies calibrations itself); ``cal_mos``/``cal_std``: after it. The cache key is the
    weights' hash and precision from the metadata, so rewriting only the metadata (calibration,
    minimum length) keeps the cached raw scores valid. Clips shorter than the model's minimum are a
    PeerError, as they are for ``samos score``.
    """

    name: str = "samos_onnx"
    outputs: tuple[str, ...] = ("mos", "std")

    def __init__(self, model: str | Path | None = None, threads: int = 1) -> None:
        from samos.runtime.scorer import Scorer

        self._scorer = Scorer(model, providers=("cpu",), threads=threads)
        self.info = self._scorer.info
        self.path = self._scorer.path

    @property
    def version(self) -> str:
        return f"samos-onnx-{self.info.weights_sha256[:16]}-{self.info.precision}"

    def predict(self, audio: np.ndarray, sr: int) -> dict[str, float]:
        from samos.audio import model_input

        a = np.asarray(audio, dtype=np.float32)
        if a.ndim != 1 or a.size == 0:
            raise PeerError(f"expected a non-empty mono waveform (samples,), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise PeerError("audio holds NaN/Inf samples")
        mi = model_input(a, int(sr))
        try:
            res = self._scorer.score(mi.wave16[None, :], mi.wave48[None, :])
        except ValueError as e:
            raise PeerError(str(e)) from None
        assert res.raw_mos is not None and res.raw_std is not None
        return {"mos": float(res.raw_mos[0]), "std": float(res.raw_std[0])}


PEERS: dict[str, Callable[[], Peer]] = {
    "dnsmos": DnsmosP835,
    "distillmos": DistillMos,
    "samos_onnx": SamosOnnx,
}
"""Peer constructors by name."""


# ------------------------------------------------------------------------------------------- caching
def default_cache_dir() -> Path:
    """``$SAMOS_CACHE/bench`` or ``$XDG_CACHE_HOME/samos/bench`` (``~/.cache/samos/bench``)."""
    if os.environ.get("SAMOS_CACHE"):
        return Path(os.environ["SAMOS_CACHE"]) / "bench"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "samos" / "bench"


class PeerCache:
    """Peer predictions on disk: ``DIR/<peer version>/<file sha256>.json`` holding the output dict."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, version: str, sha: str) -> Path:
        return self.root / "peers" / version / f"{sha}.json"

    def get(self, version: str, sha: str) -> dict[str, float] | None:
        p = self._path(version, sha)
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a torn write: recompute
        return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else None

    def put(self, version: str, sha: str, values: dict[str, float]) -> None:
        p = self._path(version, sha)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(values))
        tmp.replace(p)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return _file_sha256(Path(path))


def predict_files(
    peer: Peer,
    paths: Iterable[str | Path],
    cache: PeerCache | None = None,
    shas: dict[str, str] | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Score audio files with ``peer``, reading and filling ``cache``; returns ``{str(path): outputs}``.

    ``shas`` may give each path's SHA-256 (computed otherwise). Unreadable audio raises AudioError.
    """
    todo = [str(p) for p in paths]
    out: dict[str, dict[str, float]] = {}
    for i, p in enumerate(todo):
        sha = (shas or {}).get(p) or file_sha256(p)
        hit = cache.get(peer.version, sha) if cache else None
        if hit is None or not set(peer.outputs) <= set(hit):
            audio, sr = load_audio(p)
            try:
                hit = peer.predict(audio, sr)
            except PeerError as e:
                raise AudioError(f"{p}: {e}") from None
            if cache:
                cache.put(peer.version, sha, hit)
        out[p] = hit
        if progress:
            progress(i + 1, len(todo))
    return out
