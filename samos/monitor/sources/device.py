"""A sound card as a Source: sounddevice (PortAudio) at the device's own default rate.

The PortAudio callback thread copies each block into a bounded :class:`ThreadChannel`; when the
event loop falls behind by more than ``queue_seconds`` the oldest blocks are dropped and counted,
and the count reaches the pipeline as ``AudioChunk.dropped``. The device is never asked to resample.

A device that disappears (the stream finishes without being closed, or no block arrives for
``ReopenPolicy.stall_seconds``) is reopened by ``recv`` with exponential back-off, by the same
spec, at the same rate; the time without audio reaches the pipeline as ``dropped`` samples, so the
stream keeps its timeline and state. PortAudio only sees devices plugged in after it started when
it is re-initialised, which is done before a reopen only while no other capture stream is open.

Device selection (:func:`resolve_device`): an index (``3`` or ``"3"``), an exact name, or a unique
part of a name matched as a token (``"hw:1"`` matches ``"... (hw:1,0)"`` but not ``"hw:10"``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from samos.monitor.aio import within
from samos.monitor.channel import ChannelClosed, ThreadChannel
from samos.monitor.source import AudioChunk, SourceEnded, SourceError

log = logging.getLogger(__name__)
BLOCK_SECONDS = 0.02


def _sd() -> Any:
    try:
        import sounddevice
    except OSError as e:  # the PortAudio library itself is missing
        raise SourceError(
            f"sound cards need the system PortAudio library (apt-get install libportaudio2): {e}"
        ) from None
    return sounddevice


def input_devices() -> list[dict[str, Any]]:
    """Capture devices PortAudio offers: dicts with index, name, max_input_channels, default_samplerate."""
    sd = _sd()
    hostapis = sd.query_hostapis()
    return [
        dict(d, hostapi_name=hostapis[d["hostapi"]]["name"])
        for d in sd.query_devices()
        if d["max_input_channels"] > 0
    ]


def format_devices(devices: list[dict[str, Any]]) -> str:
    """One line per capture device: index, name, channels, default rate, host API."""
    return "\n".join(
        f"{d['index']:>3}  {d['name']}  ({d['max_input_channels']} ch, "
        f"{d['default_samplerate']:.0f} Hz, {d['hostapi_name']})"
        for d in devices
    )


def resolve_device(spec: str | int, devices: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The capture device ``spec`` names (see module doc); SourceError when none or several match."""
    devices = input_devices() if devices is None else devices
    listing = format_devices(devices) or "(no capture devices)"
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        found = [d for d in devices if d["index"] == int(text)]
        if not found:
            raise SourceError(f"no capture device with index {text}; capture devices:\n{listing}")
        return found[0]
    exact = [d for d in devices if d["name"] == text]
    if len(exact) == 1:
        return exact[0]
    pattern = re.compile(r"(?<![A-Za-z0-9])" + re.escape(text) + r"(?![0-9])", re.IGNORECASE)
    found = [d for d in devices if pattern.search(d["name"])]
    if not found:
        raise SourceError(f"no capture device matches {text!r}; capture devices:\n{listing}")
    if len(found) > 1:
        names = "\n".join(format_devices(found).splitlines())
        raise SourceError(
            f"{text!r} matches {len(found)} capture devices; give the index or exact name:\n{names}"
        )
    return found[0]


@dataclass(frozen=True)
class ReopenPolicy:
    """How a lost capture device is reopened.

    ``stall_seconds``: no block for this long means the device is gone (a live device delivers a
    block every 20 ms, silence included). ``initial_delay``/``max_delay``: seconds before the first
    reopen attempt, doubling per failed attempt up to ``max_delay``. ``max_attempts``: give up and end
    the stream after this many failed attempts (None: keep trying until closed).
    """

    stall_seconds: float = 3.0
    initial_delay: float = 0.25
    max_delay: float = 10.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not (self.stall_seconds > 0 and 0 < self.initial_delay <= self.max_delay):
            raise ValueError("ReopenPolicy: need stall_seconds > 0 and 0 < initial_delay <= max_delay")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("ReopenPolicy.max_attempts must be >= 1 or None")


_OPEN_LOCK = threading.Lock()
_OPEN_STREAMS = 0  # capture streams open in this process (PortAudio may be re-initialised only at 0)


def _refresh_portaudio(sd: Any) -> None:
    """Re-initialise PortAudio so that its device list is current (only when no stream is open)."""
    with _OPEN_LOCK:
        if _OPEN_STREAMS:
            return
        try:
            sd._terminate()
            sd._initialize()
        except Exception as e:  # noqa: BLE001 - an old list is better than none
            log.warning("re-initialising PortAudio failed: %s", e)


class DeviceSource:
    """Capture from a sound card. Create with :meth:`open` inside the running event loop."""

    kind = "device"

    def __init__(
        self,
        device: dict[str, Any],
        name: str | None = None,
        queue_seconds: float = 2.0,
        channels: int | None = None,
        spec: str | int | None = None,
        reopen: ReopenPolicy | None = None,
    ) -> None:
        self.device = device
        self.name = name or re.sub(r"[^A-Za-z0-9_.:-]+", "_", device["name"]).strip("_") or "device"
        self.rate = int(device["default_samplerate"])
        # reopened by name: after PortAudio is re-initialised an index may name another device
        self.spec: str | int = device["name"] if spec is None or str(spec).strip().isdigit() else spec
        self.reopen = reopen or ReopenPolicy()
        self.queue_seconds = queue_seconds
        self.channels = channels
        self._loop = asyncio.get_running_loop()
        self._lost = 0  # frames dropped (overflow, queue eviction, device gone) not yet reported
        self._lock = threading.Lock()
        self._closed = False
        self._stream: Any = None
        self._channel: ThreadChannel[AudioChunk]  # set by _start, replaced on each reopen
        self.overflows = 0
        self.reopens = 0
        """Times the device was lost and opened again."""
        self._evicted_before = 0
        self._last_capture = time.monotonic()
        self._start(device)

    @classmethod
    def open(
        cls,
        spec: str | int,
        name: str | None = None,
        queue_seconds: float = 2.0,
        channels: int | None = None,
        reopen: ReopenPolicy | None = None,
    ) -> DeviceSource:
        """Resolve ``spec`` and start capturing; SourceError with a readable message on failure."""
        device = resolve_device(spec)
        try:
            return cls(device, name, queue_seconds, channels, spec, reopen)
        except _sd().PortAudioError as e:
            raise SourceError(
                f"cannot open capture device {device['index']} {device['name']!r}: {e}"
            ) from None

    # ------------------------------------------------------------------------------ stream
    def _start(self, device: dict[str, Any]) -> None:
        """Open and start a PortAudio stream on ``device`` at ``self.rate``, with a fresh channel."""
        global _OPEN_STREAMS
        sd = _sd()
        block = max(1, round(BLOCK_SECONDS * self.rate))
        channel: ThreadChannel[AudioChunk] = ThreadChannel(
            self._loop, max(2, round(self.queue_seconds / BLOCK_SECONDS))
        )

        def callback(indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
            self._callback(channel, indata, frames, status)

        def open_with(n: int) -> Any:
            return sd.InputStream(
                device=device["index"],
                samplerate=self.rate,
                channels=n,
                dtype="float32",
                blocksize=block,
                callback=callback,
                finished_callback=channel.close,
            )

        try:
            stream = open_with(min(self.channels or 1, device["max_input_channels"]))
        except sd.PortAudioError:
            if self.channels is not None:
                raise
            stream = open_with(device["max_input_channels"])  # some hw: devices need all channels
        try:
            stream.start()
        except BaseException:
            stream.close()
            raise
        with _OPEN_LOCK:
            _OPEN_STREAMS += 1
        if self._stream is not None:
            self._evicted_before += self._channel.dropped
        self.device, self._stream, self._channel = device, stream, channel

    def _stop(self) -> None:
        """Stop and close the current PortAudio stream (errors of a vanished device are logged)."""
        global _OPEN_STREAMS
        stream, self._stream = self._stream, None
        if stream is None:
            return
        self._channel.close()
        with _OPEN_LOCK:
            _OPEN_STREAMS -= 1
        try:
            stream.abort()
            stream.close()
        except Exception as e:  # noqa: BLE001 - closing a vanished device
            log.warning("closing %s: %s", self.name, e)

    def _callback(
        self, channel: ThreadChannel[AudioChunk], indata: np.ndarray, frames: int, status: Any
    ) -> None:
        """PortAudio thread: never blocks, never touches the loop except through the channel."""
        lost = 0
        if status.input_overflow:
            self.overflows += 1
            lost += frames  # PortAudio does not say how much; one block is the usual loss
        with self._lock:
            lost += self._lost
            self._lost = 0
        evicted = channel.put(AudioChunk(indata.copy(), self.rate, lost, time.monotonic()))
        if evicted is not None:
            with self._lock:
                self._lost += evicted.frames + evicted.dropped

    # ------------------------------------------------------------------------------ Source
    async def recv(self) -> AudioChunk:
        """Next block; reopens a lost device (see module doc); SourceEnded once closed or given up."""
        while True:
            if self._closed:
                raise SourceEnded
            try:
                chunk = self._channel.get_nowait()  # fast path: no timer task per block
                if chunk is None:
                    chunk = await within(self._channel.get(), self.reopen.stall_seconds)
            except ChannelClosed:
                if self._closed:
                    raise SourceEnded from None
                reason = "the capture stream stopped"
            except TimeoutError:
                reason = f"no audio for {self.reopen.stall_seconds:g} s"
            else:
                self._last_capture = chunk.t_capture
                with self._lock:
                    lost, self._lost = self._lost, 0
                if lost:
                    return AudioChunk(chunk.samples, chunk.rate, chunk.dropped + lost, chunk.t_capture)
                return chunk
            await self._recover(reason)

    async def _recover(self, reason: str) -> None:
        """Reopen the device with back-off; the silent gap is added to the next chunk's ``dropped``."""
        log.warning("capture device %s (%s) lost: %s; reopening", self.name, self.spec, reason)
        self._stop()
        delay, attempt = self.reopen.initial_delay, 0
        while not self._closed:
            await asyncio.sleep(delay)
            if self._closed:
                break
            attempt += 1
            try:
                sd = _sd()
                _refresh_portaudio(sd)
                self._start(resolve_device(self.spec))
            except (SourceError, _sd().PortAudioError) as e:
                if self.reopen.max_attempts is not None and attempt >= self.reopen.max_attempts:
                    raise SourceEnded(
                        f"{self.name}: device lost, gave up after {attempt} attempts ({e})"
                    ) from None
                delay = min(2 * delay, self.reopen.max_delay)
                log.warning(
                    "reopening %s failed (attempt %d): %s; next try in %.2f s", self.name, attempt, e, delay
                )
                continue
            gap = max(0.0, time.monotonic() - self._last_capture)
            with self._lock:
                self._lost += round(gap * self.rate)
            self.reopens += 1
            log.warning("capture device %s reopened after %.2f s (attempt %d)", self.name, gap, attempt)
            return
        raise SourceEnded

    @property
    def dropped_blocks(self) -> int:
        """Blocks evicted from the queue because the loop fell behind."""
        return self._evicted_before + self._channel.dropped

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._stop()
