"""A sound card as a Source: sounddevice (PortAudio) at the device's own default rate.

The PortAudio callback thread copies each block into a bounded :class:`ThreadChannel`; when the
event loop falls behind by more than ``queue_seconds`` the oldest blocks are dropped and counted,
and the count reaches the pipeline as ``AudioChunk.dropped``. The device is never asked to resample.

Device selection (:func:`resolve_device`): an index (``3`` or ``"3"``), an exact name, or a unique
part of a name matched as a token (``"hw:1"`` matches ``"... (hw:1,0)"`` but not ``"hw:10"``).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

import numpy as np

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


class DeviceSource:
    """Capture from a sound card. Create with :meth:`open` inside the running event loop."""

    kind = "device"

    def __init__(
        self,
        device: dict[str, Any],
        name: str | None = None,
        queue_seconds: float = 2.0,
        channels: int | None = None,
    ) -> None:
        import asyncio

        sd = _sd()
        self.device = device
        self.name = name or re.sub(r"[^A-Za-z0-9_.:-]+", "_", device["name"]).strip("_") or "device"
        self.rate = int(device["default_samplerate"])
        block = max(1, round(BLOCK_SECONDS * self.rate))
        self._channel: ThreadChannel[AudioChunk] = ThreadChannel(
            asyncio.get_running_loop(), max(2, round(queue_seconds / BLOCK_SECONDS))
        )
        self._lost = 0  # frames dropped (overflow or queue eviction) not yet reported
        self._lock = threading.Lock()
        self.overflows = 0
        want = channels or 1
        try:
            self._stream = self._open(sd, min(want, device["max_input_channels"]), block)
        except sd.PortAudioError:
            if channels is not None:
                raise
            self._stream = self._open(sd, device["max_input_channels"], block)  # some hw: need all channels
        self._stream.start()

    @classmethod
    def open(
        cls, spec: str | int, name: str | None = None, queue_seconds: float = 2.0, channels: int | None = None
    ) -> DeviceSource:
        """Resolve ``spec`` and start capturing; SourceError with a readable message on failure."""
        device = resolve_device(spec)
        try:
            return cls(device, name, queue_seconds, channels)
        except _sd().PortAudioError as e:
            raise SourceError(
                f"cannot open capture device {device['index']} {device['name']!r}: {e}"
            ) from None

    def _open(self, sd: Any, channels: int, block: int) -> Any:
        return sd.InputStream(
            device=self.device["index"],
            samplerate=self.rate,
            channels=channels,
            dtype="float32",
            blocksize=block,
            callback=self._callback,
            finished_callback=self._channel.close,
        )

    def _callback(self, indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        """PortAudio thread: never blocks, never touches the loop except through the channel."""
        lost = 0
        if status.input_overflow:
            self.overflows += 1
            lost += frames  # PortAudio does not say how much; one block is the usual loss
        with self._lock:
            lost += self._lost
            self._lost = 0
        evicted = self._channel.put(AudioChunk(indata.copy(), self.rate, lost, time.monotonic()))
        if evicted is not None:
            with self._lock:
                self._lost += evicted.frames + evicted.dropped

    async def recv(self) -> AudioChunk:
        try:
            chunk = await self._channel.get()
        except ChannelClosed:
            raise SourceEnded from None
        with self._lock:
            lost, self._lost = self._lost, 0
        return AudioChunk(chunk.samples, chunk.rate, chunk.dropped + lost, chunk.t_capture) if lost else chunk

    @property
    def dropped_blocks(self) -> int:
        """Blocks evicted from the queue because the loop fell behind."""
        return self._channel.dropped

    async def close(self) -> None:
        if not self._channel.closed:
            self._channel.close()
            try:
                self._stream.stop()
                self._stream.close()
            except Exception as e:  # noqa: BLE001 - closing a vanished device
                log.warning("closing %s: %s", self.name, e)
