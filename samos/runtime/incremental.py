"""Exact incremental scoring of overlapping windows: frame features once per hop, the rest per window.

A model file ``M.onnx`` may come with a pair written by ``samos export --incremental``:
``M.frames.onnx`` (``wave16 [B, T]`` at the stream's fixed gain, ``wave48 [B, 3T]`` -> per-frame
features on a 10 ms grid, one output per branch) and ``M.head.onnx`` (those frames of one window ->
``mos``, ``mos_std``). Both carry the whole file's metadata plus ``samos.incremental`` (JSON: role,
``frame_samples``, ``edge_left``, ``edge_right``, the frame output names).

Frame ``i`` of a piece of audio depends only on the audio around it, except the first ``edge_left``
and last ``edge_right`` frames, which see the piece's edges. So a window ``[S, S+N)`` (frames, on the
grid) is assembled from: its first ``edge_left`` frames, computed from its own first
``edge_left + edge_right`` frames of audio; the stream's ring of clean frames; and the frames of the
newest audio, computed from ``edge_left`` frames before the ring's end up to the window's end (whose
last ``edge_right`` frames see exactly the window's right edge). The result equals running the frames
graph on the whole window (same gain), up to float rounding. Windows off the grid, shorter than the
edges, or whose ring is gone (a gap in scoring, a restart) are computed whole, still exactly.

Gain: the encoder's per-window peak normalisation cannot be incremental; each stream gets one fixed
gain, ``1 / peak`` of its first scored window (so that window scores as before), kept for the stream.
Torch-free (numpy + onnxruntime).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samos.runtime.buffers import BatchBuffers
from samos.runtime.modelinfo import KEY_INCREMENTAL, OUTPUT_MOS, OUTPUT_STD, ModelFileError

FramesFn = Callable[[np.ndarray | None, np.ndarray], list[np.ndarray]]
"""``(wave16 [B, T], wave48 [B, 3T]) -> [frames [B, n, D] per branch]``; ``wave16`` is None when the
frames graph does not take it (a spectrogram-only model)."""
HeadFn = Callable[[list[np.ndarray]], tuple[np.ndarray, np.ndarray]]
"""``[frames [B, n, D] per branch] -> (raw mos [B], raw std [B])``."""
PEAK_EPS = 1e-8
"""As the encoder's own peak normalisation: ``gain = 1 / (peak + 1e-8)``."""


@dataclass(frozen=True)
class FrameGeometry:
    """The frame grid: ``frame_samples`` 16 kHz samples per frame; ``left``/``right`` edge frames."""

    frame_samples: int
    left: int
    right: int

    @property
    def edge_frames(self) -> int:
        """Frames of audio that give a window's first ``left`` frames exactly."""
        return self.left + self.right

    def frames_of(self, start: int, samples: int) -> tuple[int, int] | None:
        """``(first frame, frames)`` of a window on the grid, or None when it must be computed whole."""
        fs = self.frame_samples
        if start % fs or samples % fs or samples // fs < self.edge_frames + 1:
            return None
        return start // fs, samples // fs

    @classmethod
    def from_json(cls, text: str, source: str) -> FrameGeometry:
        try:
            d = json.loads(text)
            geo = cls(int(d["frame_samples"]), int(d["edge_left"]), int(d["edge_right"]))
        except (ValueError, KeyError, TypeError) as e:
            raise ModelFileError(f"{source}: bad samos.incremental metadata ({e})") from None
        if geo.frame_samples < 1 or geo.left < 0 or geo.right < 0:
            raise ModelFileError(f"{source}: bad samos.incremental geometry {geo}")
        return geo


@dataclass
class StreamFrames:
    """One stream's incremental state: its fixed gain and its ring of clean frames (one array
    ``[n, D]`` per branch, frame ``first`` first). Lives with the stream; :meth:`reset` on restart."""

    gain: float | None = None
    first: int = 0
    ring: list[np.ndarray] = field(default_factory=list)
    computed_samples: int = 0
    """16 kHz samples that went through the frames graph for this stream (for benchmarks)."""

    def reset(self) -> None:
        self.gain, self.first, self.ring = None, 0, []

    @property
    def end(self) -> int:
        return self.first + (len(self.ring[0]) if self.ring else 0)


@dataclass(frozen=True)
class WindowJob:
    """A window to score incrementally: its stream's state, first 16 kHz sample, and audio."""

    state: StreamFrames
    start: int
    wave16: np.ndarray
    wave48: np.ndarray


@dataclass
class _Plan:
    job: WindowJob
    grid: tuple[int, int] | None  # (S, N)
    a: int = 0  # first frame of the main segment
    main: list[np.ndarray] | None = None
    head: list[np.ndarray] | None = None


class IncrementalEngine:
    """Assembles windows from per-stream rings; ``frames_fn``/``head_fn`` run the two graphs."""

    def __init__(
        self,
        geometry: FrameGeometry,
        frames_fn: FramesFn,
        head_fn: HeadFn,
        ratio: int = 3,
        wave16: bool = True,
    ) -> None:
        """``wave16``: whether ``frames_fn`` takes the 16 kHz audio (else it gets None: nothing is
        stacked or scaled for it)."""
        self.geo = geometry
        self.frames_fn = frames_fn
        self.head_fn = head_fn
        self.ratio = ratio
        self.wave16 = wave16
        self._buffers = BatchBuffers()  # batches of audio and frames, reused (one set per thread)

    def whole(
        self, wave16: np.ndarray, wave48: np.ndarray, gain: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The reference: raw ``(mos [B], std [B])`` of whole windows ``[B, T]``/``[B, 3T]`` at per-item
        ``gain [B]`` (frames of each whole window, then the head); what :meth:`score` equals."""
        w16 = (wave16 * np.asarray(gain, np.float32)[:, None]).astype(np.float32)
        return self.head_fn(self.frames_fn(w16, np.asarray(wave48, np.float32)))

    def score(self, jobs: Sequence[WindowJob]) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``(mos [B], std [B])`` of ``jobs`` (any streams, oldest first per stream), batched.

        A stream's windows go through in order: one window per stream per round (its ring moves on).
        """
        rounds: list[list[int]] = []
        seen: dict[int, int] = {}
        for i, j in enumerate(jobs):
            k = seen[id(j.state)] = seen.get(id(j.state), -1) + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(i)
        mos = np.zeros(len(jobs), np.float32)
        std = np.zeros(len(jobs), np.float32)
        for idx in rounds:
            mos[idx], std[idx] = self._round([jobs[i] for i in idx])
        return mos, std

    def _round(self, jobs: list[WindowJob]) -> tuple[np.ndarray, np.ndarray]:
        plans = [self._plan(j) for j in jobs]
        segments: list[tuple[_Plan, str, int, int]] = []  # (plan, slot, first sample, samples)
        fs = self.geo.frame_samples
        for p in plans:
            n16 = len(p.job.wave16)
            if p.grid is None:
                segments.append((p, "main", 0, n16))
                continue
            s, _ = p.grid
            segments.append((p, "main", (p.a - s) * fs, n16 - (p.a - s) * fs))
            if p.a > s:
                segments.append((p, "head", 0, self.geo.edge_frames * fs))
        self._run_frames(segments)
        mos = np.zeros(len(plans), np.float32)
        std = np.zeros(len(plans), np.float32)
        by_len: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(plans):
            by_len.setdefault(self._lengths(p), []).append(i)
        for lengths, idx in by_len.items():
            assert plans[idx[0]].main is not None
            dims = [f.shape[1:] for f in plans[idx[0]].main]
            batch = [
                self._buffers.take(("window", b), (len(idx), n, *d))
                for b, (n, d) in enumerate(zip(lengths, dims, strict=True))
            ]
            for row, i in enumerate(idx):
                self._assemble(plans[i], [x[row] for x in batch])
            m, sd = self.head_fn(batch)
            mos[idx], std[idx] = np.asarray(m).reshape(-1), np.asarray(sd).reshape(-1)
        return mos, std

    def _lengths(self, p: _Plan) -> tuple[int, ...]:
        """Frames per branch of the window ``p`` assembles."""
        assert p.main is not None
        if p.grid is None:
            return tuple(len(f) for f in p.main)
        return (p.grid[1],) * len(p.main)

    def _plan(self, job: WindowJob) -> _Plan:
        st = job.state
        if st.gain is None:
            st.gain = float(1.0 / (np.max(np.abs(job.wave16)) + PEAK_EPS)) if len(job.wave16) else 1.0
        grid = self.geo.frames_of(job.start, len(job.wave16))
        p = _Plan(job, grid)
        if grid is not None:
            s, n = grid
            left = self.geo.left
            usable = st.ring and st.first <= s + left < st.end
            p.a = min(max(s, st.end - left), s + n - self.geo.edge_frames) if usable else s
        return p

    def _run_frames(self, segments: list[tuple[_Plan, str, int, int]]) -> None:
        by_len: dict[int, list[tuple[_Plan, str, int, int]]] = {}
        for seg in segments:
            by_len.setdefault(seg[3], []).append(seg)
        r = self.ratio
        for n, group in by_len.items():
            w16 = None
            if self.wave16:
                w16 = self._buffers.take(("wave16",), (len(group), n))
                for row, (p, _, a, _) in enumerate(group):
                    np.multiply(p.job.wave16[a : a + n], np.float32(p.job.state.gain), out=w16[row])
            w48 = self._buffers.take(("wave48",), (len(group), r * n))
            for row, (p, _, a, _) in enumerate(group):
                w48[row] = p.job.wave48[r * a : r * (a + n)]
            out = self.frames_fn(w16, w48)
            for i, (p, slot, _, _) in enumerate(group):
                setattr(p, slot, [o[i] for o in out])
                p.job.state.computed_samples += n

    def _assemble(self, p: _Plan, rows: list[np.ndarray]) -> None:
        """Write the window's frames (one ``[n, D]`` row per branch) into ``rows``; move its stream's
        ring on to the window's clean frames."""
        assert p.main is not None
        if p.grid is None:
            for row, m in zip(rows, p.main, strict=True):
                row[...] = m
            return
        s, n = p.grid
        left, right = self.geo.left, self.geo.right
        st = p.job.state
        if p.a == s:
            for row, m in zip(rows, p.main, strict=True):
                row[...] = m
        else:
            assert p.head is not None
            k = p.a - s  # frames from the ring
            for row, h, ring, m in zip(rows, p.head, st.ring, p.main, strict=True):
                row[:left] = h[:left]
                row[left : left + k] = ring[s + left - st.first : p.a + left - st.first]
                row[left + k :] = m[left:]
        clean = [row[left : n - right] for row in rows]
        if st.ring and all(r.shape == c.shape for r, c in zip(st.ring, clean, strict=True)):
            for r, c in zip(st.ring, clean, strict=True):  # in place: the ring was read above
                r[...] = c
        else:  # copies: the rows are a buffer the next batch reuses
            st.ring = [np.array(c) for c in clean]
        st.first = s + left


def pair_paths(model: str | Path) -> tuple[Path, Path]:
    """``(M.frames.onnx, M.head.onnx)`` next to ``M.onnx``."""
    p = Path(model)
    stem = p.name[: -len(".onnx")] if p.name.endswith(".onnx") else p.name
    return p.with_name(stem + ".frames.onnx"), p.with_name(stem + ".head.onnx")


def int8_frames_path(model: str | Path) -> Path:
    """``M.frames.int8.onnx`` next to ``M.onnx``: the frames graph in static int8 (samos.export.quantize)."""
    frames, _ = pair_paths(model)
    return frames.with_name(frames.name[: -len(".onnx")] + ".int8.onnx")


def int8_head_path(model: str | Path) -> Path:
    """``M.head.int8.onnx`` next to ``M.onnx``: the head in static int8, when its weights are worth it."""
    _, head = pair_paths(model)
    return head.with_name(head.name[: -len(".onnx")] + ".int8.onnx")


class IncrementalPair:
    """The two onnxruntime sessions of a model's incremental pair, as an :class:`IncrementalEngine`.

    Raises ModelFileError when the pair does not belong to the whole-window file (weights differ) or
    its metadata is bad.
    """

    def __init__(
        self,
        model: str | Path,
        weights_sha256: str,
        make_session: Callable[[Path], object],
        frames_path: Path | None = None,
        head_path: Path | None = None,
    ) -> None:
        """``frames_path`` / ``head_path``: other graphs of the same pair (e.g. :func:`int8_frames_path`)."""
        self.frames_path, self.head_path = pair_paths(model)
        self.frames_path = frames_path or self.frames_path
        self.head_path = head_path or self.head_path
        self.frames_session = make_session(self.frames_path)
        self.head_session = make_session(self.head_path)
        metas = []
        for path, sess in ((self.frames_path, self.frames_session), (self.head_path, self.head_session)):
            meta = sess.get_modelmeta().custom_metadata_map  # type: ignore[attr-defined]
            if KEY_INCREMENTAL not in meta:
                raise ModelFileError(f"{path}: no {KEY_INCREMENTAL} metadata: not an incremental graph")
            if meta.get("samos.weights_sha256") != weights_sha256:
                raise ModelFileError(f"{path}: its weights differ from {model}'s; re-export the pair")
            metas.append(meta)
        self.geometry = FrameGeometry.from_json(metas[0][KEY_INCREMENTAL], str(self.frames_path))
        self.frame_names = [o.name for o in self.frames_session.get_outputs()]  # type: ignore[attr-defined]
        self.frames_inputs = [i.name for i in self.frames_session.get_inputs()]  # type: ignore[attr-defined]
        head_inputs = [i.name for i in self.head_session.get_inputs()]  # type: ignore[attr-defined]
        if head_inputs != self.frame_names:
            raise ModelFileError(
                f"{self.head_path}: inputs {head_inputs} != frame outputs {self.frame_names}"
            )
        self.engine = IncrementalEngine(
            self.geometry, self._frames, self._head, wave16="wave16" in self.frames_inputs
        )

    def _frames(self, w16: np.ndarray | None, w48: np.ndarray) -> list[np.ndarray]:
        feeds = {"wave16": w16, "wave48": w48}
        return self.frames_session.run(None, {n: feeds[n] for n in self.frames_inputs})  # type: ignore[attr-defined]

    def _head(self, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        feeds = dict(zip(self.frame_names, frames, strict=True))
        mos, std = self.head_session.run([OUTPUT_MOS, OUTPUT_STD], feeds)  # type: ignore[attr-defined]
        return mos, std


__all__ = [
    "FrameGeometry",
    "IncrementalEngine",
    "IncrementalPair",
    "StreamFrames",
    "WindowJob",
    "int8_frames_path",
    "int8_head_path",
    "pair_paths",
]
