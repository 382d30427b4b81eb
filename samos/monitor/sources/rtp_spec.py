"""What RTP stream to listen for: ``--rtp NAME=HOST:PORT[,codec=..]`` or an SDP file (as ffmpeg's
``-sdp_file``, Janus or mediasoup describe what they send), parsed into an :class:`RtpSpec` with a
one-line :class:`~samos.monitor.source.SourceError` for anything wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samos.monitor.source import SourceError
from samos.monitor.sources.rtp_codecs import CODECS


@dataclass(frozen=True)
class RtpSpec:
    """One RTP stream to listen for: ``--rtp NAME=HOST:PORT[,codec=..,rate=..,pt=..,channels=..,idle=..]``.

    ``codec``: a key of :data:`CODECS`; ``rate``: audio rate in Hz (only for ``l16``, where it is
    required; the others have theirs); ``pt``: the payload type to accept (default: the codec's
    static one, or the first dynamic one that arrives); ``channels``: of ``l16`` (opus is decoded to
    mono, the G.711 and G.722 codecs are mono); ``idle``: end the stream after this many seconds
    without a packet (default: listen until the monitor stops).
    """

    host: str
    port: int
    name: str | None = None
    codec: str = "opus"
    rate: int | None = None
    pt: int | None = None
    channels: int = 1
    idle: float | None = None

    def __post_init__(self) -> None:
        codec = CODECS.get(self.codec)
        if codec is None:
            raise SourceError(f"RTP codec {self.codec!r} is not supported: use one of {', '.join(CODECS)}")
        if codec.rate is None and self.rate is None:
            raise SourceError(f"RTP codec {self.codec} needs rate=HZ (e.g. rate=16000)")
        if codec.rate is not None and self.rate not in (None, codec.rate):
            raise SourceError(f"RTP codec {self.codec} runs at {codec.rate} Hz, not rate={self.rate}")
        if self.rate is not None and not 8_000 <= self.rate <= 192_000:
            raise SourceError(f"RTP rate must be 8000-192000 Hz, got {self.rate}")
        if self.pt is not None and not 0 <= self.pt <= 127:
            raise SourceError(f"RTP payload type must be 0-127, got {self.pt}")
        if not 1 <= self.channels <= 8 or (self.channels != 1 and self.codec != "l16"):
            raise SourceError(f"channels={self.channels}: only l16 may have more than one channel (up to 8)")
        if self.idle is not None and not self.idle > 0:
            raise SourceError(f"RTP idle must be > 0 seconds, got {self.idle}")
        if not 0 <= self.port <= 65535:
            raise SourceError(f"RTP port {self.port} out of range 0-65535")

    @property
    def audio_rate(self) -> int:
        """Rate of the decoded audio, Hz."""
        return int(CODECS[self.codec].rate or self.rate or 0)

    @property
    def clock(self) -> int:
        """RTP clock rate, Hz."""
        return int(CODECS[self.codec].clock or self.rate or 0)

    @classmethod
    def parse(cls, text: str) -> RtpSpec:
        """``[NAME=]HOST:PORT[,key=value...]`` or ``[NAME=]FILE.sdp[,key=value...]`` -> RtpSpec (options
        given override what the SDP says); raises :class:`SourceError` naming the problem."""
        name = None
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)=(.+)$", text.strip())
        if m and ":" not in m.group(1):
            name, text = m.group(1), m.group(2)
        address, *options = [p.strip() for p in text.split(",")]
        if address.lower().endswith(".sdp"):
            try:
                sdp = Path(address).read_text(errors="replace")
            except OSError as e:
                raise SourceError(f"--rtp {address}: cannot read the SDP file ({e.strerror or e})") from None
            base = parse_sdp(sdp)
            address = f"[{base['host']}]:{base.pop('port')}"
            options = [f"{k}={v}" for k, v in base.items() if k != "host" and v is not None] + options
        host, sep, port_text = address.rpartition(":")
        if not sep:
            host, port_text = "", address
        try:
            port = int(port_text)
        except ValueError:
            raise SourceError(f"--rtp {text!r}: expected [NAME=]HOST:PORT[,codec=..]") from None
        kwargs: dict[str, Any] = {}
        types: dict[str, Callable[[str], Any]] = {
            "codec": str.lower,
            "rate": int,
            "pt": int,
            "channels": int,
            "idle": float,
        }
        for option in options:
            key, eq, value = option.partition("=")
            key = key.strip().lower()
            if not eq or key not in types:
                raise SourceError(f"--rtp: unknown option {option!r} (known: {', '.join(types)})")
            try:  # a later option (the command line's) overrides an earlier one (the SDP's)
                kwargs[key] = types[key](value.strip())
            except ValueError:
                raise SourceError(f"--rtp: {key}={value!r} is not valid") from None
        return cls(host=host.strip("[]") or "127.0.0.1", port=port, name=name, **kwargs)


STATIC_PT = {
    0: ("pcmu", None, 1),
    8: ("pcma", None, 1),
    9: ("g722", None, 1),
    10: ("l16", 44_100, 2),
    11: ("l16", 44_100, 1),
}
"""Static audio payload types of RFC 3551 the decoders handle: pt -> (codec, rate, channels)."""
_ENCODINGS = {"opus": "opus", "pcmu": "pcmu", "pcma": "pcma", "g722": "g722", "l16": "l16"}


def parse_sdp(text: str) -> dict[str, Any]:
    """The first audio stream of an SDP (as ffmpeg's ``-sdp_file``, Janus or mediasoup describe what
    they send) -> ``{"host", "port", "codec", "rate", "pt", "channels"}``: the address to listen on
    (the ``c=`` line of the media or the session) and the first payload type this module decodes.
    Raises :class:`SourceError` when there is no usable audio stream."""
    host, port, formats = None, None, []
    rtpmap: dict[int, tuple[str, int, int]] = {}
    in_audio = seen_audio = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if seen_audio:
                break  # only the first audio section
            parts = line[2:].split()
            in_audio = len(parts) >= 4 and parts[0] == "audio"
            if in_audio:
                seen_audio = True
                try:
                    port, formats = int(parts[1]), [int(f) for f in parts[3:]]
                except ValueError:
                    raise SourceError(f"SDP: bad media line {line!r}") from None
        elif line.startswith("c=") and (in_audio or not seen_audio):
            parts = line[2:].split()
            if len(parts) >= 3:
                host = parts[2].split("/")[0]
        elif line.startswith("a=rtpmap:") and in_audio:
            m = re.match(r"a=rtpmap:(\d+)\s+([\w.-]+)/(\d+)(?:/(\d+))?", line)
            if m:
                rtpmap[int(m.group(1))] = (m.group(2).lower(), int(m.group(3)), int(m.group(4) or 1))
    if port is None:
        raise SourceError("SDP: no audio stream (m=audio ...)")
    for pt in formats:
        if pt in rtpmap and rtpmap[pt][0] in _ENCODINGS:
            codec, clock, channels = rtpmap[pt]
            rate = clock if codec == "l16" else None
            return {
                "host": host or "127.0.0.1",
                "port": port,
                "codec": codec,
                "rate": rate,
                "pt": pt,
                "channels": channels if codec == "l16" else None,
            }
        if pt not in rtpmap and pt in STATIC_PT:
            codec, rate, channels = STATIC_PT[pt]
            return {
                "host": host or "127.0.0.1",
                "port": port,
                "codec": codec,
                "rate": rate,
                "pt": pt,
                "channels": channels if codec == "l16" else None,
            }
    names = ", ".join(rtpmap[p][0] if p in rtpmap else str(p) for p in formats)
    raise SourceError(
        f"SDP: no payload type this monitor decodes (offered: {names}; it decodes {', '.join(CODECS)})"
    )
