"""The monitor's configuration: one frozen dataclass per component, loaded strictly from YAML.

Defaults live here only; ``configs/monitor.yaml`` serialises them and the CLI overrides a few.
Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from samos.config import ConfigError, from_dict, load_yaml
from samos.monitor.heap import MAX_MMAP_THRESHOLD
from samos.monitor.history import HistoryConfig


def parse_hostport(text: str, what: str = "address") -> tuple[str, int]:
    """``"HOST:PORT"`` or ``":PORT"`` or ``"PORT"`` -> (host, port); IPv6 as ``[::1]:PORT``."""
    text = text.strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        p = int(port)
    except ValueError:
        raise ConfigError(f"{what}: expected HOST:PORT, got {text!r}") from None
    if not 0 <= p <= 65535:
        raise ConfigError(f"{what}: port {p} out of range 0-65535")
    return host, p


KINDS = ("inprocess", "ray", "triton")
DEFAULT_TRITON_MODEL = "samos"


@dataclass(frozen=True)
class BackendSpec:
    """A parsed ``--backend`` value."""

    kind: str
    host: str = ""
    port: int = 0
    model: str = DEFAULT_TRITON_MODEL
    """Triton model name (``triton://HOST:PORT?model=NAME``) or the Serve route (``ray://HOST:PORT/ROUTE``)."""

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_backend(text: str) -> BackendSpec:
    """``inprocess`` | ``ray://HOST:PORT[/ROUTE]`` | ``triton://HOST:PORT[?model=NAME]`` -> BackendSpec."""
    text = text.strip()
    if text == "inprocess":
        return BackendSpec("inprocess")
    scheme, sep, _ = text.partition("://")
    if not sep or scheme not in ("ray", "triton"):
        raise ConfigError(f"backend must be inprocess, ray://HOST:PORT or triton://HOST:PORT, got {text!r}")
    u = urlsplit(text)
    try:
        port = u.port
    except ValueError:
        raise ConfigError(f"backend {text!r}: bad port") from None
    if not u.hostname or port is None:
        raise ConfigError(f"backend {text!r}: give HOST:PORT (e.g. {scheme}://127.0.0.1:8000)")
    if scheme == "ray":
        if u.query:
            raise ConfigError(f"backend {text!r}: ray:// takes no query")
        route = u.path.rstrip("/") or "/samos"
        return BackendSpec("ray", u.hostname, port, route)
    if u.path.strip("/"):
        raise ConfigError(f"backend {text!r}: triton:// takes no path (name the model with ?model=NAME)")
    query = parse_qs(u.query)
    unknown = set(query) - {"model"}
    if unknown:
        raise ConfigError(f"backend {text!r}: unknown option(s) {sorted(unknown)} (only model=NAME)")
    model = query.get("model", [DEFAULT_TRITON_MODEL])[-1]
    return BackendSpec("triton", u.hostname, port, model)


@dataclass(frozen=True)
class WindowConfig:
    """Scoring windows in stream seconds, and the speech gate that decides which windows get a MOS.

    The speech detector (Silero VAD, samos.runtime.vad) gives each 32 ms frame a speech probability;
    a frame is speech when it is at least ``speech_threshold``. A window whose overall level is
    below ``silence_db`` dBov is ``"silence"`` (dead air); one where fewer than ``min_active`` of its
    frames are speech is ``"no_speech"``; both get no MOS.
    """

    window_seconds: float = 4.0
    hop_seconds: float = 1.0
    min_final_seconds: float = 1.0
    """At the end of a stream shorter than one window, score what there is if at least this long."""
    silence_db: float = -60.0
    speech_threshold: float = 0.4
    min_active: float = 0.1

    def __post_init__(self) -> None:
        if not 0.25 <= self.window_seconds <= 60.0:
            raise ConfigError(f"window.window_seconds must be in [0.25, 60], got {self.window_seconds}")
        if not 0.02 <= self.hop_seconds <= self.window_seconds:
            raise ConfigError(
                f"window.hop_seconds must be in [0.02, window_seconds={self.window_seconds}], "
                f"got {self.hop_seconds}"
            )
        if not 0.0 < self.min_final_seconds <= self.window_seconds:
            raise ConfigError("window.min_final_seconds must be in (0, window_seconds]")
        if not 0.0 <= self.min_active <= 1.0:
            raise ConfigError(f"window.min_active must be in [0, 1], got {self.min_active}")
        if not 0.0 < self.speech_threshold < 1.0:
            raise ConfigError(f"window.speech_threshold must be in (0, 1), got {self.speech_threshold}")


@dataclass(frozen=True)
class AggregateConfig:
    """Rolling MOS over the windows that ended in the last ``horizon_seconds``.

    ``weighting``: ``"mean"`` (plain mean of the window MOS) or ``"inverse_variance"`` (each window
    weighted by 1/std^2 from the Gaussian head).
    """

    horizon_seconds: float = 10.0
    weighting: Literal["mean", "inverse_variance"] = "mean"

    def __post_init__(self) -> None:
        if self.horizon_seconds <= 0:
            raise ConfigError("aggregate.horizon_seconds must be > 0")


@dataclass(frozen=True)
class AlertConfig:
    """Alerts of a stream (see samos.monitor.alerts and docs/MONITOR.md).

    ``low_mos``: raise when the rolling MOS of scored windows stays below ``threshold`` for
    ``min_duration_seconds``; clear when it stays at or above ``threshold + hysteresis`` as long,
    or, with reason ``no_scores``, when no window was scored for ``clear_unscored_seconds`` (None:
    never). The threshold is a plain MOS on the scale the model outputs (the default model's
    compresses the listeners' scale: 2.8 is about what listeners rate 2.5, between poor and fair).
    ``no_speech``: raise when a stream that carried speech has none for ``no_speech_seconds``
    (None: off); clear when speech is back with the rolling MOS at or above ``threshold + hysteresis``
    for ``min_duration_seconds``.
    """

    enabled: bool = True
    threshold: float = 2.8
    hysteresis: float = 0.25
    min_duration_seconds: float = 5.0
    clear_unscored_seconds: float | None = 60.0
    no_speech_seconds: float | None = 20.0
    webhook: str | None = None
    webhook_timeout_seconds: float = 5.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.threshold <= 5.0:
            raise ConfigError(f"alerts.threshold must be a MOS in [1, 5], got {self.threshold}")
        if self.hysteresis < 0 or self.min_duration_seconds < 0:
            raise ConfigError("alerts.hysteresis and alerts.min_duration_seconds must be >= 0")
        for name in ("clear_unscored_seconds", "no_speech_seconds"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise ConfigError(f"alerts.{name} must be > 0 seconds (or null: off), got {v}")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ConfigError(f"alerts.webhook must be an http(s) URL, got {self.webhook!r}")


@dataclass(frozen=True)
class WorkerConfig:
    """The one inference worker: batches pending windows of all streams (same length) per call."""

    providers: tuple[str, ...] = ("auto",)
    """``auto``: what is installed, best first (TensorRT, CUDA, CPU); or a list such as ``[cuda]``,
    each of which must be installed (see samos.runtime.providers)."""
    fallback: bool = False
    """Skip listed providers that are not installed, saying so, instead of refusing to start."""
    threads: int | None = None
    max_batch: int = 16
    queue_size: int = 256
    """Pending windows (all streams); when full the oldest is dropped and counted."""
    inflight_per_stream: int = 8
    """Windows a stream may have waiting for scores before its reader waits (back-pressure)."""
    incremental: bool = True
    """Use the model's incremental pair when it has one (frame features once per hop per stream,
    exact; a fixed gain per stream instead of the per-window peak): docs/MONITOR.md."""
    int8: bool = True
    """On CPU, run the pair's static-int8 graphs when the model has them (``M.frames.int8.onnx``, and
    ``M.head.int8.onnx``: 0.050 vs 0.086 CPU-s per stream-second for the default, within the model
    card's accuracy budget)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.queue_size < 1 or self.inflight_per_stream < 1:
            raise ConfigError("worker.max_batch, queue_size and inflight_per_stream must be >= 1")


@dataclass(frozen=True)
class WebsocketConfig:
    """The websocket server subscribers connect to (``ws://host:port/``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8765
    client_queue: int = 256
    """Messages buffered per client; when full the oldest is dropped and counted."""
    max_clients: int = 256
    max_message_bytes: int = 65536
    """Largest message a client may send; a larger one closes its connection (code 1009)."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins (``https://host:port``) allowed besides pages of the same host; ``"*"``: any."""
    batch_seconds: float = 0.1
    """Messages published within this many seconds are written to each client together (one socket
    write instead of one per message); 0: each message at once."""

    def __post_init__(self) -> None:
        if self.client_queue < 1 or self.max_clients < 1 or self.max_message_bytes < 256:
            raise ConfigError("ws.client_queue and ws.max_clients must be >= 1, ws.max_message_bytes >= 256")
        if not 0.0 <= self.batch_seconds <= 1.0:
            raise ConfigError(f"ws.batch_seconds must be in [0, 1], got {self.batch_seconds}")


@dataclass(frozen=True)
class HttpConfig:
    """The aiohttp app (WebRTC signalling, publish/overlay pages, /metrics)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    max_peers: int = 32
    """WebRTC publishers connected at once (further offers get 503)."""
    max_body_bytes: int = 65536
    """Largest accepted request body (a browser's offer is 3-10 KB); larger ones get 413."""
    allowed_origins: tuple[str, ...] = ()
    """Browser origins allowed to POST /offer besides the monitor's own pages; ``"*"``: any."""
    webrtc_handoff: Literal["batched", "aiortc"] = "batched"
    """How received audio is decoded and handed to the loop: ``batched`` (one decoding thread for
    every peer, one wake-up per ``webrtc_batch_seconds``, see samos.monitor.sources.handoff) or
    ``aiortc`` (a thread per peer and a hand-off per 20 ms frame: costlier)."""
    webrtc_conceal: bool = True
    """Conceal lost Opus packets with the codec's own PLC and in-band FEC (``batched`` hand-off, where
    libopus loads; samos.monitor.sources.opus_plc); false, or else: lost audio becomes silence."""
    webrtc_batch_seconds: float = 0.1
    """Received WebRTC audio is handled in batches this long (0.01-1 s): the ``batched`` hand-off
    decrypts, decodes and hands over the packets that arrived in one go, and each source gives its
    stream chunks of about this much audio. Longer: less CPU per stream, each score later by up to
    as much (docs/RELIABILITY.md)."""

    def __post_init__(self) -> None:
        if self.max_peers < 1 or self.max_body_bytes < 1024:
            raise ConfigError("http.max_peers must be >= 1 and http.max_body_bytes >= 1024")
        if not 0.01 <= self.webrtc_batch_seconds <= 1.0:
            raise ConfigError(
                f"http.webrtc_batch_seconds must be in [0.01, 1] s, got {self.webrtc_batch_seconds}"
            )


@dataclass(frozen=True)
class AuthConfig:
    """Optional shared token for websocket subscribers and WebRTC publishers (None: open)."""

    token: str | None = None


@dataclass(frozen=True)
class IngestConfig:
    """RTP and telephony-websocket ingest (docs/INGEST.md).

    ``rtp_jitter_seconds``: how long a missing RTP packet may hold back later ones.
    ``rtp_max_packet_rate``: packets per second accepted from one RTP sender (more are dropped).
    ``rtp_max_packet_bytes``: larger datagrams are dropped.
    ``rtp_conceal``: lost Opus packets concealed by libopus (PLC, in-band FEC), else a gap (silence).
    ``telephony_max_streams``: telephony websocket calls at once (more are refused with 503).
    ``telephony_max_message_bytes``: larger websocket messages close the call (1009).
    ``telephony_inactivity_timeout``: seconds without audio after which a call is ended.
    """

    rtp_jitter_seconds: float = 0.06
    rtp_max_packet_rate: float = 400.0
    rtp_max_packet_bytes: int = 8192
    rtp_conceal: bool = True
    telephony_max_streams: int = 64
    telephony_max_message_bytes: int = 65536
    telephony_inactivity_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not 0 <= self.rtp_jitter_seconds <= 2.0:
            raise ConfigError(f"ingest.rtp_jitter_seconds must be in [0, 2], got {self.rtp_jitter_seconds}")
        if self.rtp_max_packet_rate <= 0 or self.rtp_max_packet_bytes < 64:
            raise ConfigError("ingest.rtp_max_packet_rate must be > 0 and rtp_max_packet_bytes >= 64")
        if self.telephony_max_streams < 1 or self.telephony_max_message_bytes < 1024:
            raise ConfigError(
                "ingest.telephony_max_streams must be >= 1 and telephony_max_message_bytes >= 1024"
            )
        if self.telephony_inactivity_timeout <= 0:
            raise ConfigError("ingest.telephony_inactivity_timeout must be > 0")

    def rtp_options(self) -> Any:
        """The :class:`samos.monitor.sources.rtp.RtpOptions` these settings give."""
        from samos.monitor.sources.rtp import RtpOptions

        return RtpOptions(
            jitter_seconds=self.rtp_jitter_seconds,
            max_packet_rate=self.rtp_max_packet_rate,
            max_packet_bytes=self.rtp_max_packet_bytes,
            conceal=self.rtp_conceal,
        )


@dataclass(frozen=True)
class SourceConfig:
    """Defaults for sources: file pacing, chunk size, the sound card's buffer."""

    realtime: bool = True
    loop: bool = False
    chunk_seconds: float = 0.02
    device_queue_seconds: float = 2.0
    """Audio buffered between the sound-card thread and the loop before the oldest is dropped."""

    def __post_init__(self) -> None:
        if not 0.001 <= self.chunk_seconds <= 1.0:
            raise ConfigError("source.chunk_seconds must be in [0.001, 1]")
        if self.device_queue_seconds <= 0:
            raise ConfigError("source.device_queue_seconds must be > 0")


@dataclass(frozen=True)
class MonitorConfig:
    """The whole monitor. ``model``: ONNX path or an embedded model's name, ``default`` or ``compact``
    (None: the embedded default model)."""

    model: str | None = None
    window: WindowConfig = field(default_factory=WindowConfig)
    aggregate: AggregateConfig = field(default_factory=AggregateConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    ws: WebsocketConfig = field(default_factory=WebsocketConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    log: str | None = None
    """JSONL log of every score, alert and call summary (None: no log)."""
    exit_when_done: bool = True
    """Stop once every source has ended (never while WebRTC ingest is on)."""
    backend: str = "inprocess"
    """Where windows are scored: ``inprocess``, ``ray://HOST:PORT`` or ``triton://HOST:PORT``
    (see samos.monitor.backends)."""
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    """``auto``: uvloop where installed (needed for many WebRTC peers), else asyncio's loop."""
    ingest: IngestConfig = field(default_factory=IngestConfig)
    """RTP and telephony-websocket ingest limits (docs/INGEST.md)."""
    heap_trim_seconds: float | None = 10.0
    """Every this many seconds the C heap's free pages go back to the system (glibc's
    ``malloc_trim``; samos.monitor.heap, docs/RELIABILITY.md); None: never."""
    heap_mmap_threshold_bytes: int | None = 131072
    """Memory blocks of at least this many bytes are mapped on their own and given back when freed
    (glibc's ``M_MMAP_THRESHOLD``, pinned when the Monitor starts); None: glibc's moving default."""

    def __post_init__(self) -> None:
        parse_backend(self.backend)
        if self.heap_trim_seconds is not None and not self.heap_trim_seconds > 0:
            raise ConfigError(f"heap_trim_seconds must be > 0 or null, got {self.heap_trim_seconds!r}")
        limit = self.heap_mmap_threshold_bytes
        if limit is not None and not 0 <= limit <= MAX_MMAP_THRESHOLD:
            raise ConfigError(
                f"heap_mmap_threshold_bytes must be in [0, {MAX_MMAP_THRESHOLD}] or null, got {limit!r}"
            )


DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "monitor.yaml"


def load_config(path: str | Path | None = None) -> MonitorConfig:
    """Load a MonitorConfig from YAML (``None``: configs/monitor.yaml when present, else defaults)."""
    if path is None:
        if not DEFAULT_CONFIG.is_file():
            return MonitorConfig()
        path = DEFAULT_CONFIG
    data = load_yaml(path)
    try:
        return from_dict(MonitorConfig, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def override(cfg: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` dropping None values (CLI flags that were not given)."""
    given = {k: v for k, v in changes.items() if v is not None}
    return replace(cfg, **given) if given else cfg
