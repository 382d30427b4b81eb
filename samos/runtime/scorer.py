"""``Scorer``: one onnxruntime session for a samos ONNX model, with an enforced input contract.

Torch-free (numpy + onnxruntime). The session is built once with explicit providers and threads;
``score`` is synchronous and thread-safe to call from a worker thread (onnxruntime releases the GIL).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from samos.audio import SPEC_RATE, SSL_RATE
from samos.runtime.incremental import (
    IncrementalPair,
    StreamFrames,
    WindowJob,
    int8_frames_path,
    int8_head_path,
    pair_paths,
)
from samos.runtime.modelinfo import (
    INPUT_WAVE16,
    INPUT_WAVE48,
    OUTPUT_MOS,
    OUTPUT_STD,
    ModelFileError,
    ModelInfo,
    file_sha256,
    parse_metadata,
)
from samos.runtime.providers import (
    DEFAULT_PROVIDERS,
    ProviderUnavailableError,
    ShapeProfile,
    check_running,
    choose_providers,
    resolve_providers,
    session_kwargs,
    session_options,
)

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "default.onnx"
"""The embedded default model shipped inside the package."""
EMBEDDED_MODELS = ("default", "compact")
"""Models shipped inside the package, by the name ``--model`` accepts: ``default`` (SA-SSL-MOS,
:data:`DEFAULT_MODEL`) and ``compact`` (the CPU-fleet student distilled from it; ``compact.onnx``,
samos/models/MODEL_CARD_compact.md)."""
log = logging.getLogger(__name__)
_ORT_FLOAT = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class DefaultModelMissingError(ModelFileError):
    """The package was installed without its embedded default model."""


@dataclass(frozen=True)
class ScoreBatch:
    """Calibrated scores of a batch, float32 ``[B]`` in MOS units: ``mos`` and ``std`` (predictive std).

    ``raw_mos`` / ``raw_std``: the graph's own outputs before the model's calibration (None when the
    producer does not keep them; with an identity calibration they equal ``mos`` / ``std``).
    """

    mos: np.ndarray
    std: np.ndarray
    raw_mos: np.ndarray | None = None
    raw_std: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.mos)


def resolve_model_path(model: str | Path | None) -> Path:
    """The model file to load: a path, an embedded model's name (``default``, ``compact``; a plain
    string only, a Path is always a file) or, when None, the embedded default. Clear error when absent."""
    name = "default" if model is None else model if isinstance(model, str) else None
    if name in EMBEDDED_MODELS:
        path = DEFAULT_MODEL if name == "default" else MODELS_DIR / f"{name}.onnx"
        if not path.is_file():
            raise DefaultModelMissingError(
                f"no embedded {name} model at {path}: this samos build ships without one; "
                "pass a model file (--model M.onnx, made with `samos export`)"
            )
        return path
    assert model is not None
    p = Path(model)
    if not p.exists():
        raise ModelFileError(f"{p}: no such model file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a folder, not an ONNX model file")
    if p.stat().st_size == 0:
        raise ModelFileError(f"{p}: empty model file")
    return p


class Scorer:
    """Scores batches of waveforms with a samos ONNX model.

    Args:
        model: path of an ONNX file from ``samos export``; None for the embedded default model.
        providers: ``("auto",)`` (default: what is installed, best first) or execution providers in
            order of preference ("tensorrt", "cuda", "cpu"), each of which must be installed
            (ProviderUnavailableError otherwise). ``provider`` says which one really runs.
        fallback: skip requested providers that are not installed or fail to load instead of
            raising; ``notes`` then says what was skipped.
        threads: CPU intra-op threads (default: all usable cores); inter-op is always 1.
        fp16: let TensorRT build a half-precision engine (``trt_fp16_enable``). Independent of the
            model file's own precision (an fp16 export runs in fp16 on every provider).
        trt_cache_dir: folder for TensorRT engine and timing caches (None: no cache, every process
            rebuilds the engine).
        max_batch: largest batch sent to the session at once (larger inputs are split); also the
            TensorRT profile's max batch.
        max_seconds: longest input TensorRT's profile accepts (default: the model's window_seconds).
        device_id: GPU index for CUDA and TensorRT.
        sha256: if given, the model file's sha256 must match it.
        incremental: load the model's incremental pair (``M.frames.onnx``, ``M.head.onnx``) when it
            has one, for :meth:`score_windows` (exact streaming; see samos.runtime.incremental).
            ``pair`` is None without one; a pair that does not fit is skipped with a note.
        int8: on the CPU provider, use the pair's static-int8 graphs (``M.frames.int8.onnx`` and, when
            there is one, ``M.head.int8.onnx``; samos.export.quantize) when the model has them: less
            CPU per stream, within the model card's accuracy budget. ``frames_int8`` says whether
            they are in use.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        providers: Sequence[str] = DEFAULT_PROVIDERS,
        threads: int | None = None,
        fallback: bool = False,
        fp16: bool = False,
        trt_cache_dir: str | Path | None = None,
        max_batch: int = 64,
        max_seconds: float | None = None,
        device_id: int = 0,
        sha256: str | None = None,
        incremental: bool = True,
        int8: bool = True,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.path = resolve_model_path(model)
        choice = choose_providers(providers, fallback=fallback)
        self.requested = list(choice.names)
        notes = list(choice.notes)
        self.max_batch = max_batch
        if sha256 is not None and file_sha256(self.path) != sha256.lower():
            raise ModelFileError(f"{self.path}: sha256 does not match the expected {sha256}")
        self._so = session_options(threads)
        self.threads = self._so.intra_op_num_threads

        # TensorRT's shape profile needs the metadata (window, inputs) before its session exists: read it
        # with a cheap unoptimised CPU session, only then. If the real session fails to build, retry on CPU
        # alone: a file CPU cannot load is a bad file, otherwise the GPU provider was the problem.
        trt = "tensorrt" in self.requested
        probe_info = self._read_info_cpu() if trt else None
        inputs = probe_info.inputs if probe_info else (INPUT_WAVE16, INPUT_WAVE48)
        window = probe_info.window_seconds if probe_info else 10.0
        min_s = probe_info.min_seconds if probe_info else 0.5
        ssl_rate = probe_info.ssl_rate if probe_info else 16_000
        ratio = probe_info.rate_ratio if probe_info else 3
        hi = max(max_seconds or window, window)
        self.profile = ShapeProfile(
            batch=(1, min(8, max_batch), max_batch),
            samples16=(int(min_s * ssl_rate), int(window * ssl_rate), int(hi * ssl_rate)),
            rate_ratio=ratio,
        )
        plist, _ = resolve_providers(
            self.requested,
            inputs=inputs,
            profile=self.profile,
            fp16=fp16,
            trt_cache_dir=trt_cache_dir,
            device_id=device_id,
        )
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=self._so,
                providers=[n for n, _ in plist],
                provider_options=[o for _, o in plist],
                **session_kwargs([n for n, _ in plist]),
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            if [n for n, _ in plist] == ["CPUExecutionProvider"]:
                raise ModelFileError(f"{self.path}: not a loadable ONNX model ({_short(e)})") from None
            cpu = self._cpu_session()  # a file CPU cannot load either is a ModelFileError
            failed = f"building the session on {', '.join(self.requested)} failed ({_short(e)})"
            if not (choice.auto or fallback):
                raise ProviderUnavailableError(f"{failed}; cpu works (ask for it, or --fallback)") from None
            self.session = cpu
            notes.append(f"{failed}; running on cpu")
        self.providers = list(self.session.get_providers())
        self.provider = check_running(choice, self.providers, fallback=fallback)
        if self.provider != self.requested[0] and not notes:
            notes.append(f"{self.requested[0]} did not load; running on {self.provider}")
        self.auto = choice.auto
        """The providers were chosen by ``auto`` (what is installed)."""
        self.notes: tuple[str, ...] = tuple(notes)
        """What did not go as asked, one line each (only with ``fallback``, or ``auto`` when a provider
        that looked installed did not load)."""
        for note in self.notes:  # the CLIs print them; library users read ``notes``
            log.info("%s", note)
        self.info = self._read_info(self.session)
        self._in_types = {i.name: _ORT_FLOAT[i.type] for i in self.session.get_inputs()}
        self._max16 = self.profile.samples16[2] if self.provider == "tensorrt" else None
        self.pair: IncrementalPair | None = None
        self.int8_graphs: tuple[str, ...] = ()
        """Which graphs of the pair run in static int8: ``("frames",)`` or ``("frames", "head")``."""
        if incremental and all(p.is_file() for p in pair_paths(self.path)):
            frames8, head8 = int8_frames_path(self.path), int8_head_path(self.path)
            use8 = int8 and self.provider == "cpu" and frames8.is_file()
            try:
                self.pair = IncrementalPair(
                    self.path,
                    self.info.weights_sha256,
                    self._pair_session,
                    frames8 if use8 else None,
                    head8 if use8 and head8.is_file() else None,
                )
                self.int8_graphs = (("frames", "head") if head8.is_file() else ("frames",)) if use8 else ()
            except ModelFileError as e:
                self.notes += (f"incremental pair not used: {e}",)
                log.info("incremental pair not used: %s", e)

    def _pair_session(self, path: Path) -> ort.InferenceSession:
        """A session for one graph of the pair, on the main session's providers (TensorRT aside: its
        shape profile is the waveform's)."""
        providers = [p for p in self.providers if p != "TensorrtExecutionProvider"]
        try:
            return ort.InferenceSession(
                str(path), sess_options=self._so, providers=providers, **session_kwargs(providers)
            )
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise ModelFileError(f"{path}: not a loadable ONNX model ({_short(e)})") from None

    def new_stream(self) -> StreamFrames | None:
        """A stream's incremental state (None when the model has no pair: score whole windows)."""
        return StreamFrames() if self.pair is not None else None

    def score_windows(self, jobs: Sequence[WindowJob], *, finite: bool = False) -> ScoreBatch:
        """Calibrated scores of windows of streams (:class:`WindowJob`), incrementally: equal to
        :meth:`score` of each window at its stream's fixed gain (see samos.runtime.incremental).
        ``finite``: as for :meth:`score`."""
        if self.pair is None:
            raise ValueError(f"{self.path} has no incremental pair (samos export --incremental)")
        for j in jobs:  # the inputs the model takes (a spectrogram-only model ignores wave16)
            for name, wave in ((INPUT_WAVE16, j.wave16), (INPUT_WAVE48, j.wave48)):
                if name in self.needs:
                    self._check(name, wave[None], finite)
            if len(j.wave48) != self.info.rate_ratio * len(j.wave16):
                raise ValueError(
                    f"wave48 has {len(j.wave48)} samples, not {self.info.rate_ratio} x {len(j.wave16)}"
                )
            if len(j.wave16) < self.info.min_samples16:
                raise ValueError(
                    f"input too short: {len(j.wave16) / self.info.ssl_rate:.3f} s; "
                    f"this model needs at least {self.info.min_seconds} s"
                )
        raw_mos, raw_std = self.pair.engine.score(jobs)
        mos, std = self.info.calibration.apply(raw_mos, raw_std)
        return ScoreBatch(mos, std, raw_mos, raw_std)

    # ------------------------------------------------------------------------------------- loading
    def _cpu_session(self) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(
                str(self.path),
                sess_options=self._so,
                providers=["CPUExecutionProvider"],
                **session_kwargs(["CPUExecutionProvider"]),
            )
        except Exception as e:  # noqa: BLE001
            raise ModelFileError(f"{self.path}: not a loadable ONNX model ({_short(e)})") from None

    def _read_info_cpu(self) -> ModelInfo:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        so.log_severity_level = 3
        try:
            sess = ort.InferenceSession(str(self.path), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise ModelFileError(f"{self.path}: not a loadable ONNX model ({_short(e)})") from None
        return self._read_info(sess)

    def _read_info(self, sess: ort.InferenceSession) -> ModelInfo:
        src = str(self.path)
        ins = {i.name: i for i in sess.get_inputs()}
        outs = {o.name for o in sess.get_outputs()}
        if not ins or not set(ins) <= {INPUT_WAVE16, INPUT_WAVE48}:
            raise ModelFileError(
                f"{src}: inputs {sorted(ins)} are not samos inputs "
                f"(expected {INPUT_WAVE16} and/or {INPUT_WAVE48})"
            )
        for i in ins.values():
            if i.type not in _ORT_FLOAT or len(i.shape) != 2:
                raise ModelFileError(
                    f"{src}: input {i.name} is {i.type} {i.shape}; expected float [batch, samples]"
                )
        if not {OUTPUT_MOS, OUTPUT_STD} <= outs:
            raise ModelFileError(f"{src}: outputs {sorted(outs)} lack {OUTPUT_MOS} and {OUTPUT_STD}")
        meta = sess.get_modelmeta().custom_metadata_map
        order = tuple(n for n in (INPUT_WAVE16, INPUT_WAVE48) if n in ins)
        info = parse_metadata(dict(meta), inputs=order, source=src)
        if (info.ssl_rate, info.spec_rate) != (SSL_RATE, SPEC_RATE):
            raise ModelFileError(
                f"{src}: model rates {info.ssl_rate}/{info.spec_rate} Hz differ from this runtime's "
                f"{SSL_RATE}/{SPEC_RATE} Hz"
            )
        return info

    # ------------------------------------------------------------------------------------- scoring
    @property
    def frames_int8(self) -> bool:
        """The incremental pair runs its static-int8 frames graph."""
        return "frames" in self.int8_graphs

    @property
    def needs(self) -> tuple[str, ...]:
        """Graph inputs, in (wave16, wave48) order."""
        return self.info.inputs

    def _check(self, name: str, x: np.ndarray | None, finite: bool = False) -> np.ndarray:
        if x is None:
            raise ValueError(f"this model needs {name} (it takes {', '.join(self.needs)})")
        a = np.asarray(x)
        if a.dtype.kind != "f":
            raise ValueError(f"{name} must be float audio in [-1, 1], got dtype {a.dtype}")
        if a.ndim != 2:
            raise ValueError(f"{name} must have shape [batch, samples], got {a.shape}")
        if a.shape[0] < 1:
            raise ValueError(f"{name} holds an empty batch")
        if finite and a.dtype == np.float32:
            return np.ascontiguousarray(a)
        with np.errstate(over="ignore", invalid="ignore"):
            a32 = np.ascontiguousarray(a, dtype=np.float32)  # beyond float32's range: Inf, refused below
            # one pass, no temporary the size of the batch: a float64 sum of finite float32 samples
            # cannot overflow, and any NaN/Inf makes it non-finite
            total = np.add.reduce(a32, axis=None, dtype=np.float64)
        if not np.isfinite(total):
            raise ValueError(f"{name} holds {int(np.count_nonzero(~np.isfinite(a32)))} NaN/Inf samples")
        return a32

    def score(
        self, wave16: np.ndarray | None, wave48: np.ndarray | None = None, *, finite: bool = False
    ) -> ScoreBatch:
        """Calibrated MOS and its standard deviation for a batch (the raw outputs ride along).

        ``wave16``: float ``[B, T]`` at 16 kHz; ``wave48``: float ``[B, 3T]`` at 48 kHz, the same audio
        (a model without one of the branches ignores that input, which may then be None).
        Raises ValueError for shapes that do not fit, NaN/Inf, or inputs shorter than ``info.min_seconds``.
        ``finite=True``: the caller vouches that float32 inputs hold no NaN/Inf (the monitor's windows,
        which its normaliser made finite), so they are not scanned for them (a scan of every sample:
        a third of the cost of scoring a window with a model as cheap as the soak's level model).
        """
        info = self.info
        w16 = (
            self._check(INPUT_WAVE16, wave16, finite)
            if INPUT_WAVE16 in self.needs or wave16 is not None
            else None
        )
        w48 = (
            self._check(INPUT_WAVE48, wave48, finite)
            if INPUT_WAVE48 in self.needs or wave48 is not None
            else None
        )
        if w16 is not None:
            batch, t16 = w16.shape
        else:
            assert w48 is not None
            batch, n48 = w48.shape
            if n48 % info.rate_ratio:
                raise ValueError(f"wave48 length {n48} is not a multiple of {info.rate_ratio}")
            t16 = n48 // info.rate_ratio
        if w16 is not None and w48 is not None and w48.shape != (batch, info.rate_ratio * t16):
            raise ValueError(
                f"wave48 must have shape [batch, {info.rate_ratio}*samples] = "
                f"{(batch, info.rate_ratio * t16)} "
                f"to match wave16 {w16.shape}, got {w48.shape}"
            )
        if t16 < info.min_samples16:
            raise ValueError(
                f"input too short: {t16 / info.ssl_rate:.3f} s; "
                f"this model needs at least {info.min_seconds} s"
            )
        if self._max16 is not None and t16 > self._max16:
            raise ValueError(
                f"input too long for the TensorRT profile: {t16 / info.ssl_rate:.2f} s > "
                f"{self._max16 / info.ssl_rate:.2f} s "
                "(score in windows, or build the Scorer with max_seconds)"
            )
        feeds = {INPUT_WAVE16: w16, INPUT_WAVE48: w48}
        mos_parts, std_parts = [], []
        for s in range(0, batch, self.max_batch):
            feed = {
                n: feeds[n][s : s + self.max_batch].astype(self._in_types[n], copy=False)  # type: ignore[index]
                for n in self.needs
            }
            mos, std = self.session.run([OUTPUT_MOS, OUTPUT_STD], feed)
            mos_parts.append(np.asarray(mos, np.float32).reshape(-1))
            std_parts.append(np.asarray(std, np.float32).reshape(-1))
        raw_mos, raw_std = np.concatenate(mos_parts), np.concatenate(std_parts)
        mos_all, std_all = info.calibration.apply(raw_mos, raw_std)
        return ScoreBatch(mos_all, std_all, raw_mos, raw_std)

    def __repr__(self) -> str:
        return f"Scorer({str(self.path)!r}, provider={self.provider!r}, threads={self.threads})"


def _short(e: BaseException, limit: int = 300) -> str:
    msg = " ".join(str(e).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."
