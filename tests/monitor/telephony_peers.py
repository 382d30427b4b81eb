"""Telephony websocket clients for the ingest tests, following each published format message by message:
Twilio Media Streams (JSON events, base64 mu-law), FreeSWITCH mod_audio_fork (a metadata text frame,
then L16 little-endian binary frames) and Asterisk chan_websocket (MEDIA_START, then media frames).

Imported as ``from telephony_peers import ...`` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Set as AbstractSet
from typing import Any

import av
import numpy as np

STREAM_SID = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL_SID = "CA0123456789abcdef0123456789abcdef"
ACCOUNT_SID = "AC0123456789abcdef0123456789abcdef"


def mulaw(audio8k: np.ndarray) -> bytes:
    """Mono float32 at 8 kHz -> G.711 mu-law bytes (FFmpeg's encoder through PyAV)."""
    pcm = (np.clip(audio8k, -1, 1) * 32767).astype(np.int16)
    codec = av.CodecContext.create("pcm_mulaw", "w")
    codec.sample_rate, codec.format, codec.layout = 8000, "s16", "mono"
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    return b"".join(bytes(p) for p in codec.encode(frame))


def twilio_connected() -> str:
    return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})


def twilio_start(seq: int = 1, parameters: dict[str, str] | None = None, **fmt: Any) -> str:
    media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1, **fmt}
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": str(seq),
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": STREAM_SID,
                "callSid": CALL_SID,
                "tracks": ["inbound"],
                "mediaFormat": media_format,
                "customParameters": parameters or {},
            },
            "streamSid": STREAM_SID,
        }
    )


def twilio_media(seq: int, chunk: int, timestamp_ms: int, payload: bytes, track: str = "inbound") -> str:
    return json.dumps(
        {
            "event": "media",
            "sequenceNumber": str(seq),
            "media": {
                "track": track,
                "chunk": str(chunk),
                "timestamp": str(timestamp_ms),
                "payload": base64.b64encode(payload).decode(),
            },
            "streamSid": STREAM_SID,
        }
    )


def twilio_stop(seq: int) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": str(seq),
            "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
            "streamSid": STREAM_SID,
        }
    )


def twilio_call(
    audio8k: np.ndarray,
    parameters: dict[str, str] | None = None,
    skip: AbstractSet[int] = frozenset(),
    stop: bool = True,
) -> list[str]:
    """A whole call as Twilio sends it: connected, start, one media message per 20 ms (160 bytes),
    stop. Chunks in ``skip`` are not sent (their timestamps are missing: lost audio)."""
    payload = mulaw(audio8k)
    out = [twilio_connected(), twilio_start(1, parameters)]
    seq = 2
    for chunk, i in enumerate(range(0, len(payload), 160), start=1):
        if chunk - 1 not in skip:
            out.append(twilio_media(seq, chunk, (chunk - 1) * 20, payload[i : i + 160]))
            seq += 1
    if stop:
        out.append(twilio_stop(seq))
    return out


def l16le_frames(audio: np.ndarray, rate: int, ms: int = 20, channels: int = 1) -> list[bytes]:
    """Float audio (``[n]`` or ``[n, ch]``) -> little-endian signed 16-bit frames of ``ms`` ms."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    size = rate * ms // 1000 * 2 * channels
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def asterisk_media_start(fmt: str, json_form: bool = False, frame: int = 640) -> str:
    """chan_websocket's MEDIA_START, in its plain-text or JSON control-message form."""
    if json_form:
        return json.dumps(
            {
                "event": "MEDIA_START",
                "connection_id": "media_connection1",
                "channel": "WebSocket/media_connection1/0x5140001a0040",
                "channel_id": "1761245643.1",
                "format": fmt,
                "optimal_frame_size": frame,
                "ptime": 20,
                "channel_variables": {"MEDIA_WEBSOCKET_CONNECTION_ID": "media_connection1"},
            }
        )
    return (
        f"MEDIA_START connection_id:media_connection1 channel:WebSocket/media_connection1/0x5140001a0040 "
        f"format:{fmt} optimal_frame_size:{frame} ptime:20"
    )
