"""A VoIP Opus call through the system libopus (ctypes): lost packets are decoded AS LOST.

Through PyAV, an empty packet is end-of-stream (``avcodec_send_packet`` answers EOF) and there is no
way to ask for FEC; a 1-byte packet holding only the lost packet's TOC byte does make ffmpeg's
libopus wrapper decode a zero-length frame, which libopus conceals (RFC 6716, 3.2.1), but that is a
trick on ffmpeg's wrapper. Here every 20 ms packet is encoded by libopus, and each packet that the
loss pattern drops is passed to ``opus_decode_float`` as NULL, which runs libopus' own packet-loss
concealment (pitch-synchronous extrapolation that fades out over a long burst), exactly as a VoIP
receiver does. Optionally the encoder adds in-band FEC (LBRR) and the receiver recovers a lost packet
from the next one when that arrived. The encoder's audio bandwidth can be switched mid-call
(``OPUS_SET_BANDWIDTH``), as Opus does when the network changes.

Needs the shared library ``libopus.so.0`` (Debian ``libopus0``); :func:`available` says whether it is there.
Audio: mono float32 ``(samples,)`` at 48 kHz in, same length out (the codec delay is removed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from samos.data.simulate.codecs import codec_delay

RATE = 48_000
FRAME = 960
"""Samples per packet: 20 ms at 48 kHz, the usual VoIP packet."""
MAX_PACKET = 4_000

_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_BANDWIDTH = 4008
_SET_COMPLEXITY = 4010
_SET_INBAND_FEC = 4012
_SET_PACKET_LOSS_PERC = 4014
MAX_DELAY = 1_200
"""Longest codec delay searched for, samples (libopus is 120-400 at 48 kHz)."""
BANDWIDTHS = {4_000: 1101, 6_000: 1102, 8_000: 1103, 12_000: 1104, 20_000: 1105}
"""Opus audio bandwidth (Hz, upper edge) -> OPUS_BANDWIDTH_* (narrow, medium, wide, super-wide, full)."""


class OpusError(RuntimeError):
    """libopus is missing or returned an error."""


@lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("opus") or "libopus.so.0"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    vp, ip, i = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int
    lib.opus_encoder_create.restype = vp
    lib.opus_encoder_create.argtypes = [i, i, i, ip]
    lib.opus_decoder_create.restype = vp
    lib.opus_decoder_create.argtypes = [i, i, ip]
    lib.opus_encode_float.argtypes = [vp, vp, i, vp, i]
    lib.opus_decode_float.argtypes = [vp, vp, i, vp, i, i]
    lib.opus_encoder_destroy.argtypes = [vp]
    lib.opus_decoder_destroy.argtypes = [vp]
    lib.opus_get_version_string.restype = ctypes.c_char_p
    return lib


def available() -> bool:
    """Whether the system libopus can be loaded."""
    return _lib() is not None


def version() -> str:
    lib = _lib()
    return lib.opus_get_version_string().decode() if lib is not None else ""


@dataclass(frozen=True)
class OpusCall:
    """One direction of an Opus VoIP call.

    ``bitrate_kbps``: encoder target; ``fec``: in-band FEC on (the encoder is told to expect
    ``expected_loss_pct`` loss); ``bandwidth_hz``: the encoder's audio bandwidth, one key of
    :data:`BANDWIDTHS` (None: automatic).
    """

    bitrate_kbps: float = 24.0
    fec: bool = False
    expected_loss_pct: int = 10
    complexity: int = 5
    bandwidth_hz: int | None = None


def _ctl(lib: ctypes.CDLL, enc: int, request: int, value: int) -> None:
    ret = lib.opus_encoder_ctl(ctypes.c_void_p(enc), ctypes.c_int(request), ctypes.c_int(value))
    if ret != 0:
        raise OpusError(f"opus_encoder_ctl({request}, {value}) failed with {ret}")


def transmit(
    audio: np.ndarray,
    call: OpusCall,
    lost: np.ndarray | None = None,
    bandwidth_switch: tuple[int, int] | None = None,
) -> np.ndarray:
    """Encode ``audio`` (float32 ``(samples,)`` at 48 kHz) into 20 ms packets, drop the packets marked
    in ``lost`` (bool ``(packets,)``, ``ceil(samples / 960)`` long; None = no loss), decode the rest
    and conceal the lost ones with libopus' PLC (or its FEC when ``call.fec`` and the next packet
    arrived). ``bandwidth_switch = (packet, hz)`` changes the encoder's bandwidth to ``hz`` from that
    packet on. Returns float32 of the input's length, aligned with it (codec delay removed).
    """
    lib = _lib()
    if lib is None:
        raise OpusError("libopus.so.0 not found (apt-get install libopus0)")
    x = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    err = ctypes.c_int()
    enc = lib.opus_encoder_create(RATE, 1, _APPLICATION_VOIP, ctypes.byref(err))
    if err.value != 0 or not enc:
        raise OpusError(f"opus_encoder_create failed ({err.value})")
    dec = lib.opus_decoder_create(RATE, 1, ctypes.byref(err))
    if err.value != 0 or not dec:
        lib.opus_encoder_destroy(enc)
        raise OpusError(f"opus_decoder_create failed ({err.value})")
    try:
        _ctl(lib, enc, _SET_BITRATE, int(call.bitrate_kbps * 1000))
        _ctl(lib, enc, _SET_COMPLEXITY, call.complexity)
        _ctl(lib, enc, _SET_INBAND_FEC, int(call.fec))
        _ctl(lib, enc, _SET_PACKET_LOSS_PERC, call.expected_loss_pct if call.fec else 0)
        if call.bandwidth_hz is not None:
            _ctl(lib, enc, _SET_BANDWIDTH, BANDWIDTHS[call.bandwidth_hz])
        n_packets = int(np.ceil((len(x) + MAX_DELAY) / FRAME))
        padded = np.zeros(n_packets * FRAME, np.float32)
        padded[: len(x)] = x
        drop = np.zeros(n_packets, bool)
        if lost is not None:
            k = min(len(lost), n_packets)
            drop[:k] = np.asarray(lost[:k], bool)
        packets: list[bytes] = []
        buf = (ctypes.c_ubyte * MAX_PACKET)()
        for p in range(n_packets):
            if bandwidth_switch is not None and p == bandwidth_switch[0]:
                _ctl(lib, enc, _SET_BANDWIDTH, BANDWIDTHS[bandwidth_switch[1]])
            frame = padded[p * FRAME : (p + 1) * FRAME]
            n = lib.opus_encode_float(enc, frame.ctypes.data, FRAME, buf, MAX_PACKET)
            if n < 0:
                raise OpusError(f"opus_encode_float failed ({n})")
            packets.append(bytes(buf[:n]))
        out = np.zeros(n_packets * FRAME, np.float32)
        pcm = np.zeros(FRAME, np.float32)
        for p in range(n_packets):
            if not drop[p]:
                data, size, fec = packets[p], len(packets[p]), 0
            elif call.fec and p + 1 < n_packets and not drop[p + 1]:
                data, size, fec = packets[p + 1], len(packets[p + 1]), 1  # LBRR copy in the next packet
            else:
                data, size, fec = None, 0, 0  # lost: libopus conceals
            m = lib.opus_decode_float(dec, data, size, pcm.ctypes.data, FRAME, fec)
            if m < 0:
                raise OpusError(f"opus_decode_float failed ({m})")
            out[p * FRAME : p * FRAME + m] = pcm[:m]
    finally:
        lib.opus_encoder_destroy(enc)
        lib.opus_decoder_destroy(dec)
    # the encoder's lookahead (OPUS_GET_LOOKAHEAD) is not the whole delay in SILK and hybrid modes:
    # measure it on a loss-free copy of the first packets instead, as the other codecs do
    delay = codec_delay(x, out, MAX_DELAY)
    return out[delay : delay + len(x)].copy()
