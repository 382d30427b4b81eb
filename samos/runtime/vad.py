"""Speech detection: Silero VAD (v6, MIT) as ONNX on onnxruntime; torch-free.

The vendored model (``samos/models/vad/``, provenance in its README.md) is Silero's "sequence"
export: the same network as the stock streaming ``silero_vad.onnx`` (bit-identical per-frame
probabilities; see the README there for how that was checked), but one ONNX
call takes a whole block of frames, so a stream costs one call per block instead of one per 32 ms.
The detector loads that network rewritten as dense matrix products (:data:`VAD_MODEL`, made from the
vendored file by :mod:`samos.export.vad_dense`): the same weights, probabilities within 1e-5, 2.4x
less CPU per frame.

Frames are 512 samples at 16 kHz (32 ms), on a fixed grid from the stream's first sample. Each
frame is fed with the last 64 samples of the previous one in front (zeros before the first), and
the LSTM state ``(h, c)`` carries across frames: a frame's probability depends on everything
before it, so a stream must go through one :class:`SpeechDetector` in order.

* :func:`speech_prob` - pure: per-frame probabilities of a whole 16 kHz waveform (fresh state).
* :class:`SpeechDetector` - stateful: ``push(wave16) -> probabilities of the frames completed``;
  pushing a waveform in chunks of any size gives exactly :func:`speech_prob` of the whole.
* :func:`window_frames` - which of a stream's frames lie wholly inside a window.
* :class:`VadModel` - the onnxruntime session (built once, one thread, CPU; shared by streams:
  onnxruntime sessions are safe to ``run`` from several threads).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from samos.audio import SSL_RATE

VAD_DIR = Path(__file__).resolve().parent.parent / "models" / "vad"
VAD_SOURCE_MODEL = VAD_DIR / "silero_vad_16k_sequence.onnx"
VAD_SOURCE_SHA256 = "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"
"""sha256 of the vendored source (silero-vad 6.2.3 wheel, ``silero_vad/data/``, unchanged)."""
VAD_DENSE_MODEL = VAD_DIR / "silero_vad_16k_dense.onnx"
VAD_DENSE_SHA256 = "03d417a1f9a9e76789aac8732e25d94549dfae0c2ae42135863f105f8ac9f45e"
"""sha256 of the same network as dense matrix products (``python -m samos.export.vad_dense``)."""
VAD_MODEL = VAD_DENSE_MODEL
"""The file the detector loads: the dense graph (about 2.4x faster on a CPU thread, probabilities within
1e-5 of the source's: :mod:`samos.export.vad_dense`)."""
VAD_SHA256 = VAD_DENSE_SHA256
"""Checked on load of :data:`VAD_MODEL`."""

FRAME = 512
"""Samples per VAD frame at 16 kHz (32 ms)."""
CONTEXT = 64
"""Samples of the previous frame fed in front of each frame."""
FRAME_SECONDS = FRAME / SSL_RATE
STATE_SHAPE = (1, 1, 128)
MAX_BLOCK = 512
"""Frames per ONNX call at most (16.4 s of audio)."""


class VadModelError(ValueError):
    """The VAD model file is missing or is not the vendored one."""


class VadModel:
    """The Silero VAD onnxruntime session: ``run(frames [n, 576], h, c) -> (probs [n], h, c)``.

    Built once with explicit thread settings (``threads`` intra-op threads, 1 inter-op thread,
    CPU provider: the model is 1-2 MB and cheaper on the CPU than a device round trip).
    """

    def __init__(self, path: str | Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        from samos.runtime.modelinfo import file_sha256

        self.path = Path(path) if path is not None else VAD_MODEL
        if not self.path.is_file():
            raise VadModelError(f"no VAD model at {self.path} (this samos build is incomplete)")
        if path is None and file_sha256(self.path) != VAD_SHA256:
            raise VadModelError(f"{self.path}: sha256 does not match the vendored Silero VAD ({VAD_SHA256})")
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input", "h", "c"]:
            raise VadModelError(f"{self.path}: inputs {names}, not the Silero sequence model's input, h, c")

    def run(
        self, frames: np.ndarray, h: np.ndarray, c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``frames``: float32 ``[n, CONTEXT + FRAME]``; ``h``, ``c``: float32 ``[1, 1, 128]``.
        Returns the speech probabilities ``[n]`` (0..1) and the new state."""
        probs, h, c = self.session.run(["speech_probs", "hn", "cn"], {"input": frames, "h": h, "c": c})
        return np.asarray(probs, np.float32).reshape(-1), h, c


@functools.lru_cache(maxsize=1)
def default_model() -> VadModel:
    """The vendored model's session, built on first use and shared by every detector."""
    return VadModel()


class SpeechDetector:
    """One stream's speech detector: ``push(wave16)`` returns the probabilities of the frames it
    completed (float32 ``[k]``, one per 512 samples); a partial frame waits for the next push."""

    def __init__(self, model: VadModel | None = None) -> None:
        self.model = model if model is not None else default_model()
        self.frames = 0
        """Frames done so far (frame ``i`` covers 16 kHz samples ``512 i .. 512 i + 511``)."""
        self._h = np.zeros(STATE_SHAPE, np.float32)
        self._c = np.zeros(STATE_SHAPE, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._rest = np.zeros(0, np.float32)

    def push(self, wave16: np.ndarray) -> np.ndarray:
        """Add float32 16 kHz samples ``[n]``; return the probabilities of the frames completed."""
        x = np.asarray(wave16, np.float32)
        if x.ndim != 1:
            raise ValueError(f"speech detector: expected mono 16 kHz samples [n], got shape {x.shape}")
        if self._rest.size:
            x = np.concatenate([self._rest, x])
        n = len(x) // FRAME
        self._rest = x[n * FRAME :].copy()
        if n == 0:
            return np.zeros(0, np.float32)
        frames = x[: n * FRAME].reshape(n, FRAME)
        out = []
        for b in range(0, n, MAX_BLOCK):
            blk = frames[b : b + MAX_BLOCK]
            ctx = np.empty((len(blk), CONTEXT), np.float32)
            ctx[0] = self._context
            ctx[1:] = blk[:-1, -CONTEXT:]
            probs, self._h, self._c = self.model.run(np.concatenate([ctx, blk], axis=1), self._h, self._c)
            self._context = blk[-1, -CONTEXT:].copy()
            out.append(probs)
        self.frames += n
        return np.concatenate(out) if len(out) > 1 else out[0]


def speech_prob(wave16: np.ndarray, model: VadModel | None = None) -> np.ndarray:
    """Speech probability of each whole 32 ms frame of a 16 kHz waveform, float32 ``[len // 512]``
    (a partial last frame is left out). Pure: a fresh detector state."""
    return SpeechDetector(model).push(wave16)


def window_frames(start: int, length: int) -> tuple[int, int, int]:
    """The detector frames wholly inside the window of ``length`` 16 kHz samples from sample
    ``start`` of a stream: ``(first, end, offset)``, frames ``first .. end - 1`` of the stream's
    :func:`speech_prob`, the first beginning ``offset`` samples after the window's start."""
    first = -(-start // FRAME)
    end = max(first, (start + length) // FRAME)
    return first, end, first * FRAME - start
