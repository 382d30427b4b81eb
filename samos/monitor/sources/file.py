"""Files and network streams as a Source, paced in real time or delivered as fast as possible.

Local files soundfile reads are read with soundfile; anything else (compressed formats, URLs such as
http://, rtsp://, rtmp://) is decoded with PyAV in a worker thread (``asyncio.to_thread``) so a slow
network never blocks the event loop. Audio keeps the file's native rate and channels.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np

from samos.monitor.source import AudioChunk, SourceEnded, SourceError


class _Reader(Protocol):
    rate: int

    def read(self, n: int) -> np.ndarray | None: ...
    def rewind(self) -> None: ...
    def close(self) -> None: ...


class _SoundfileReader:
    """libsndfile decoding in blocks of about ``BLOCK_SECONDS``, served in the source's small chunks:
    one library call per 20 ms chunk cost more than the decoding (soundfile checks its position on
    every read)."""

    BLOCK_SECONDS = 1.0

    def __init__(self, path: str) -> None:
        import soundfile as sf

        self._f = sf.SoundFile(path)
        self.rate = int(self._f.samplerate)
        self._block = np.zeros((0, self._f.channels), np.float32)
        self._pos = 0

    def read(self, n: int) -> np.ndarray | None:
        """The next ``n`` frames ``[<= n, channels]`` float32 (fewer at the end; None after it)."""
        if self._pos >= len(self._block):
            want = max(n, int(self.BLOCK_SECONDS * self.rate))
            self._block = self._f.read(want, dtype="float32", always_2d=True)
            self._pos = 0
            if not len(self._block):
                return None
        out = self._block[self._pos : self._pos + n]
        self._pos += len(out)
        if len(out) < n and self._pos >= len(self._block):  # a chunk across two blocks
            more = self.read(n - len(out))
            if more is not None:
                out = np.concatenate([out, more])
        return out

    def rewind(self) -> None:
        self._f.seek(0)
        self._block = self._block[:0]
        self._pos = 0

    def close(self) -> None:
        self._f.close()


class _AvReader:
    """PyAV decoding to packed float32 ``[n, channels]`` at the stream's own rate."""

    def __init__(self, url: str) -> None:
        import av

        self._av, self.url = av, url
        self._open()

    def _open(self) -> None:
        try:
            self._c = self._av.open(self.url, timeout=10.0)
        except Exception as e:  # noqa: BLE001 - PyAV raises many error types
            raise SourceError(f"{self.url}: cannot open ({e})") from None
        streams = [s for s in self._c.streams if s.type == "audio"]
        if not streams:
            self._c.close()
            raise SourceError(f"{self.url}: holds no audio stream")
        s = streams[0]
        self.rate = int(s.codec_context.sample_rate or s.rate or 0)  # type: ignore[attr-defined]
        self._resampler = self._av.AudioResampler(format="flt", rate=self.rate)
        self._frames = self._c.decode(s)

    def read(self, n: int) -> np.ndarray | None:
        """The next decoded frame (its own size, not ``n``), or None at the end."""
        for frame in self._frames:
            out = self._resampler.resample(frame)  # type: ignore[arg-type]
            parts = [f.to_ndarray().reshape(-1, len(f.layout.channels)) for f in out]
            if parts:
                return np.concatenate(parts)
        return None

    def rewind(self) -> None:
        self._c.close()
        self._open()

    def close(self) -> None:
        self._c.close()


def _is_url(spec: str) -> bool:
    return "://" in spec


def derive_name(spec: str) -> str:
    """A stream name from a path or URL: the file stem (``a/b/call.wav`` -> ``call``)."""
    path = urlsplit(spec).path if _is_url(spec) else spec
    stem = Path(path).stem
    return stem or (urlsplit(spec).hostname or "file")


class FileSource:
    """A file or network stream. Construct with :meth:`open` (which does not block the loop)."""

    kind = "file"

    def __init__(
        self,
        reader: _Reader,
        name: str,
        realtime: bool = True,
        loop: bool = False,
        chunk_seconds: float = 0.02,
        threaded: bool = False,
    ) -> None:
        self._reader = reader
        self.name = name
        self.rate = reader.rate
        self.realtime = realtime
        self.loop = loop
        self._chunk = max(1, round(chunk_seconds * self.rate))
        self._threaded = threaded
        self._t0: float | None = None
        self._sent = 0
        self._closed = False

    @classmethod
    async def open(
        cls,
        spec: str,
        name: str | None = None,
        realtime: bool = True,
        loop: bool = False,
        chunk_seconds: float = 0.02,
    ) -> FileSource:
        """Open a path or URL; raises SourceError with a readable message when it cannot."""
        reader = await asyncio.to_thread(_open_reader, spec)
        return cls(
            reader,
            name or derive_name(spec),
            realtime,
            loop,
            chunk_seconds,
            threaded=isinstance(reader, _AvReader),
        )

    async def _read(self) -> np.ndarray | None:
        if self._threaded:
            return await asyncio.to_thread(self._reader.read, self._chunk)
        return self._reader.read(self._chunk)

    async def recv(self) -> AudioChunk:
        """The next chunk; in real-time mode returned when its last sample 'would have been captured'."""
        if self._closed:
            raise SourceEnded
        data = await self._read()
        if data is None and self.loop and self._sent:
            await asyncio.to_thread(self._reader.rewind) if self._threaded else self._reader.rewind()
            data = await self._read()
        if data is None:
            raise SourceEnded
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        self._sent += len(data)
        if self.realtime:
            due = self._t0 + self._sent / self.rate
            if due > now:
                await asyncio.sleep(due - now)
            now = max(time.monotonic(), due)
        else:
            await asyncio.sleep(0)  # let other streams run
        return AudioChunk(data, self.rate, 0, now)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()


def _open_reader(spec: str) -> _Reader:
    if not _is_url(spec):
        p = Path(spec)
        if not p.is_file():
            raise SourceError(f"{spec}: no such file")
        if p.stat().st_size == 0:
            raise SourceError(f"{spec}: empty file")
        try:
            return _SoundfileReader(spec)
        except Exception:  # noqa: BLE001 - not a soundfile format: try PyAV
            pass
    try:
        reader = _AvReader(spec)
    except SourceError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SourceError(f"{spec}: not a readable audio file or stream ({e})") from None
    if reader.rate <= 0:
        reader.close()
        raise SourceError(f"{spec}: unknown sample rate")
    return reader
