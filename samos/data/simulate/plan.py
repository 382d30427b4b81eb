"""A clip's degradation plan: drawn at random (seeded) from the config, applied in a fixed chain order.

Chain (the order a call meets them): the talker's room (reverb) -> a competing talker -> acoustic
echo (talker echo or double talk) -> background noise -> capture band limit -> capture clipping ->
noise suppressor -> AGC -> talker level -> codec (PyAV, or an Opus call through libopus, with
bandwidth switching and lost packets concealed by its PLC) -> packet loss without PLC -> jitter-buffer
time-scaling -> playback clipping. Every parameter is a flat field so it can go to the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from samos.audio import SPEC_RATE
from samos.data.simulate import degrade, opus, processing, room
from samos.data.simulate.codecs import CodecSpec, run_codec
from samos.data.simulate.config import OPUS_BANDWIDTHS_HZ, DegradeConfig
from samos.data.simulate.measure import effective_bandwidth_hz
from samos.data.simulate.noises import NoiseBank

NAN = float("nan")


def _set(v: float) -> bool:
    return v == v  # not NaN


@dataclass(frozen=True)
class Plan:
    """Degradation parameters of one clip; empty strings / NaN mean 'not applied'."""

    room: str = ""
    """``pyroomacoustics`` or ``synthetic`` when reverberated."""
    rt60_s: float = NAN
    drr_db: float = NAN
    """Direct-to-reverberant ratio of a synthetic room (pyroomacoustics rooms: NaN)."""
    room_dist_m: float = NAN
    """Talker-microphone distance in a pyroomacoustics room (drawn; as placed once applied), m."""
    talker2: str = ""
    """``competing`` when a second near-end talker is mixed in."""
    sir_db: float = NAN
    echo: str = ""
    """``talker`` (the talker's own voice comes back) or ``double_talk`` (the far end's voice)."""
    echo_delay_s: float = NAN
    echo_loss_db: float = NAN
    echo_rt60_s: float = NAN
    echo_path: str = ""
    """How the loudspeaker-to-microphone path is made: ``pyroomacoustics`` (a room with the
    loudspeaker 0.05-0.5 m from the microphone) or ``synthetic`` (direct + decaying noise)."""
    echo_drive_db: float = NAN
    """Loudspeaker overdrive of the echo (soft clipping), dB; NaN: linear loudspeaker."""
    noise: str = ""
    snr_db: float = NAN
    band: str = ""
    """``lowpass``, ``highpass``, ``telephone`` or ''."""
    band_hz: float = NAN
    clip_fraction: float = NAN
    ns_oversubtract: float = NAN
    ns_floor_db: float = NAN
    agc_max_gain_db: float = NAN
    agc_release_s: float = NAN
    level: str = ""
    """``quiet``, ``loud``, ``jumps`` or ''."""
    level_db: float = NAN
    codec: str = ""
    """A codecs.py name; ``opus`` goes through libopus when it is installed (``codec_impl``)."""
    codec_kbps: float = NAN
    codec_impl: str = ""
    """``libopus`` or ``pyav``."""
    bw_switch_hz: str = ""
    """Opus audio bandwidth before and after a mid-clip switch, e.g. ``20000>8000``."""
    bw_switch_s: float = NAN
    loss_rate: float = NAN
    loss_burst: float = NAN
    loss_model: str = ""
    """``random`` (independent losses) or ``gilbert_elliott`` (bursty)."""
    loss_bad: float = NAN
    """Loss probability in the Gilbert-Elliott Bad state."""
    loss_concealment: str = ""
    """``plc`` / ``plc+fec`` (libopus decodes the lost packets as lost), ``zero`` or ``repeat``."""
    jitter_spikes: int = 0
    jitter_s: float = NAN
    """Total delay of the jitter spikes ridden out (s)."""
    playback_gain_db: float = NAN

    @property
    def names(self) -> list[str]:
        """The applied degradations, in chain order."""
        flags = (
            (_set(self.rt60_s), "reverb"),
            (bool(self.talker2), "talker"),
            (bool(self.echo), "echo"),
            (bool(self.noise), "noise"),
            (bool(self.band), "band"),
            (_set(self.clip_fraction), "clip"),
            (_set(self.ns_oversubtract), "suppressor"),
            (_set(self.agc_max_gain_db), "agc"),
            (bool(self.level), "level"),
            (bool(self.codec), "codec"),
            (bool(self.bw_switch_hz), "bwswitch"),
            (_set(self.loss_rate), "loss"),
            (self.jitter_spikes > 0, "jitter"),
            (_set(self.playback_gain_db), "playback_clip"),
        )
        return [name for flag, name in flags if flag]

    def row(self) -> dict[str, object]:
        d: dict[str, object] = asdict(self)
        d["degradations"] = "+".join(self.names) or "clean"
        return d


def _choice(rng: np.random.Generator, items: tuple | list):  # noqa: ANN202
    return items[int(rng.integers(len(items)))]


def _u(rng: np.random.Generator, pair: tuple[float, float]) -> float:
    return float(rng.uniform(*pair))


def sample_plan(
    cfg: DegradeConfig, rng: np.random.Generator, codecs: list[str], libopus: bool = False
) -> Plan:
    """Draw one plan. ``codecs``: the PyAV codec names this machine can run (codecs.available_codecs);
    ``libopus``: whether the system libopus is there (Opus calls with real PLC, bandwidth switching).

    Every draw is made whether or not its stage is used, so the stages stay independent streams
    (adding a stage's probability changes no other stage's parameters)."""
    if rng.random() < cfg.p_clean:
        return Plan()
    p: dict[str, object] = {}
    noise_types = [t for t in cfg.noise_types if t != "recorded" or cfg.noise_dir is not None]
    if rng.random() < cfg.p_reverb:
        kind = cfg.room if cfg.room == "synthetic" or room.available() else "synthetic"
        p.update(room=kind, rt60_s=_u(rng, cfg.rt60_s))
        drr, dist = float(rng.uniform(-3.0, 12.0)), _u(rng, cfg.talker_distance_m)
        p.update(drr_db=drr) if kind == "synthetic" else p.update(room_dist_m=dist)
    if rng.random() < cfg.p_talker:
        p.update(talker2="competing", sir_db=_u(rng, cfg.sir_db))
    if rng.random() < cfg.p_echo:
        kind = "double_talk" if rng.random() < cfg.p_double_talk else "talker"
        p.update(
            echo=kind,
            echo_delay_s=_u(rng, cfg.echo_delay_s),
            echo_loss_db=_u(rng, cfg.echo_loss_db),
            echo_rt60_s=_u(rng, cfg.echo_rt60_s),
            echo_path=cfg.room if cfg.room == "synthetic" or room.available() else "synthetic",
        )
        if rng.random() < cfg.p_echo_nonlinear:
            p.update(echo_drive_db=float(rng.uniform(3.0, 15.0)))
    if rng.random() < cfg.p_noise and noise_types:
        p.update(noise=str(_choice(rng, noise_types)), snr_db=_u(rng, cfg.snr_db))
    if rng.random() < cfg.p_band:
        kind = _choice(rng, ("lowpass", "lowpass", "lowpass", "highpass", "telephone"))
        hz = {
            "lowpass": float(_choice(rng, cfg.lowpass_hz)),
            "highpass": float(rng.uniform(150, 500)),
            "telephone": 3_400.0,
        }[kind]
        p.update(band=kind, band_hz=hz)
    if rng.random() < cfg.p_clip:
        p.update(clip_fraction=_u(rng, cfg.clip_fraction))
    if rng.random() < cfg.p_suppressor and "noise" in p:
        p.update(ns_oversubtract=_u(rng, cfg.oversubtract), ns_floor_db=_u(rng, cfg.suppressor_floor_db))
    if rng.random() < cfg.p_agc:
        p.update(agc_max_gain_db=_u(rng, cfg.agc_max_gain_db), agc_release_s=_u(rng, cfg.agc_release_s))
    if rng.random() < cfg.p_level:
        kind = _choice(rng, ("quiet", "loud", "jumps"))
        db = {"quiet": cfg.quiet_db, "loud": cfg.loud_db, "jumps": (8.0, 20.0)}[kind]
        p.update(level=kind, level_db=_u(rng, db))
    rates = {"opus": cfg.opus_kbps, "mp3": cfg.mp3_kbps, "aac": cfg.aac_kbps, "amr_nb": cfg.amr_nb_kbps}

    def codec_kbps(name: str) -> float:
        return {"g722": 64.0, "mulaw": 64.0, "alaw": 64.0}.get(name) or float(_choice(rng, rates[name]))

    if codecs and rng.random() < cfg.p_codec:
        name = str(_choice(rng, codecs))
        p.update(codec=name, codec_kbps=codec_kbps(name))
    switch = rng.random() < cfg.p_bandwidth_switch
    bws = [int(b) for b in rng.permutation(OPUS_BANDWIDTHS_HZ)[:2]]
    switch_s = float(rng.uniform(0.25, 0.75))
    loss = rng.random() < cfg.p_loss
    rate = _u(rng, cfg.loss_rate)
    bursty = rng.random() < cfg.p_loss_bursty
    burst = float(_choice(rng, (1.5, 2.0, 3.0, 5.0)))
    loss_bad = float(rng.uniform(max(0.5, rate + 0.05), 1.0))
    plc = rng.random() < cfg.p_loss_plc
    fec = rng.random() < cfg.p_fec
    concealment = str(_choice(rng, ("zero", "repeat")))
    opus_kbps = float(_choice(rng, cfg.opus_kbps))
    if libopus and ((loss and plc) or switch) and p.get("codec") != "opus":
        p.update(codec="opus", codec_kbps=opus_kbps)  # these need an Opus call
    if p.get("codec") == "opus":
        p.update(codec_impl="libopus" if libopus else "pyav")
    elif p.get("codec"):
        p.update(codec_impl="pyav")
    if switch and libopus:
        p.update(bw_switch_hz=f"{bws[0]}>{bws[1]}", bw_switch_s=switch_s)
    if loss:
        p.update(loss_rate=rate, loss_model="gilbert_elliott" if bursty else "random")
        if bursty:
            p.update(loss_burst=burst, loss_bad=loss_bad)
        if p.get("codec_impl") == "libopus" and plc:
            p.update(loss_concealment="plc+fec" if fec else "plc")
        else:
            p.update(loss_concealment=concealment)
    if rng.random() < cfg.p_jitter:
        n = int(rng.integers(1, 4))
        p.update(jitter_spikes=n, jitter_s=sum(_u(rng, cfg.jitter_spike_s) for _ in range(n)))
    if rng.random() < cfg.p_playback_clip:
        p.update(playback_gain_db=_u(rng, cfg.playback_gain_db))
    if not p and noise_types:  # not drawn as clean, so degrade it somehow: background noise is the commonest
        p.update(noise=str(_choice(rng, noise_types)), snr_db=_u(rng, cfg.snr_db))
    return Plan(**p)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Applied:
    """The degraded clip, the speech path's bandwidth (Hz), the realised loss rate and the plan as
    applied (with what was only known on applying it: the room's talker distance, the noise file)."""

    audio: np.ndarray
    path_bandwidth_hz: float
    loss_realised: float
    plan: Plan


def _band(plan: Plan, x: np.ndarray, rate: int) -> np.ndarray:
    if plan.band == "lowpass":
        return degrade.lowpass(x, rate, plan.band_hz)
    if plan.band == "highpass":
        return degrade.highpass(x, rate, plan.band_hz)
    if plan.band == "telephone":
        return degrade.telephone_band(x, rate)
    return x


def _switch(plan: Plan, n: int, rate: int) -> tuple[int | None, tuple[int, int] | None]:
    """(first bandwidth, (packet, second bandwidth)) of a planned Opus bandwidth switch."""
    if not plan.bw_switch_hz:
        return None, None
    a, b = (int(v) for v in plan.bw_switch_hz.split(">"))
    packet = int(plan.bw_switch_s * n / opus.FRAME)
    return a, (packet, b)


def _loss(plan: Plan, n_frames: int, rng: np.random.Generator) -> np.ndarray:
    if plan.loss_model == "gilbert_elliott":
        return degrade.gilbert_elliott(n_frames, plan.loss_rate, plan.loss_burst, plan.loss_bad, rng)
    return rng.random(n_frames) < plan.loss_rate


def _spike_times(k: int, seconds: float, lost: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """When the jitter buffer runs dry (s): where loss bursts start when the clip has losses (a late
    packet is first a missing one), else anywhere; never in the last 1.5 s (expand + accelerate)."""
    lo, hi = 0.3, max(0.31, seconds - 1.5)
    uniform = rng.uniform(lo, hi, k)
    if lost is not None:
        frames = np.flatnonzero(np.diff(np.r_[False, lost].astype(int)) == 1) * degrade.FRAME_S
        frames = frames[(frames >= lo) & (frames <= hi)]
        if len(frames) >= k:
            return np.sort(rng.choice(frames, k, replace=False))
    return np.sort(uniform)


def apply_plan(
    plan: Plan,
    clean: np.ndarray,
    rng: np.random.Generator,
    source_bandwidth_hz: float,
    other_talkers: Callable[[int], list[np.ndarray]],
    rate: int = SPEC_RATE,
    noise_bank: NoiseBank | None = None,
) -> Applied:
    """Run the chain on ``clean`` (float32 ``(samples,)`` at ``rate``; libopus stages need 48 kHz).

    ``other_talkers(n)`` returns ``n`` clean utterances of other talkers (babble, the competing
    talker, the far end of a double talk); ``noise_bank`` the recorded noises (``recorded`` noise).
    The path bandwidth is measured on the clean clip passed through the band limit and the codec only
    (so that wide-band noise cannot pass for speech bandwidth); without those stages it is the
    source's bandwidth. With a bandwidth switch it is the narrower of the two parts.
    """
    x = clean.astype(np.float32, copy=True)
    n = len(x)
    if _set(plan.rt60_s):
        if plan.room == "pyroomacoustics":
            r = room.simulate_room(rate, plan.rt60_s, (plan.room_dist_m, plan.room_dist_m), rng)
            x = degrade.convolve_keep_level(x, rate, r.rir)
            plan = _with(plan, room_dist_m=round(r.distance_m, 2))
        else:
            x = degrade.reverb(x, rate, plan.rt60_s, plan.drr_db, rng)
    if plan.talker2:
        other = other_talkers(1)[0]
        start = int(rng.integers(0, max(1, n // 2)))
        x = degrade.add_talker(x, rate, other, plan.sir_db, start)
    if plan.echo:
        far = other_talkers(1)[0] if plan.echo == "double_talk" else x
        if plan.echo_path == "pyroomacoustics":
            speaker_m = float(rng.uniform(0.05, 0.5))  # a laptop or a phone on hands-free
            path = room.simulate_room(rate, plan.echo_rt60_s, (speaker_m, speaker_m), rng).rir
        else:
            path = degrade.synthetic_rir(rate, plan.echo_rt60_s, float(rng.uniform(0.0, 10.0)), rng)
        drive = plan.echo_drive_db if _set(plan.echo_drive_db) else None
        x = degrade.echo(x, rate, far, plan.echo_delay_s, plan.echo_loss_db, path, drive)
    if plan.noise:
        if plan.noise == "babble":
            noise = degrade.babble(other_talkers(int(rng.integers(3, 7))), n, rng)
        elif plan.noise == "recorded":
            if noise_bank is None:
                raise ValueError("recorded noise needs a noise bank (degrade.noise_dir)")
            name, noise = noise_bank.segment(n, rng)
            plan = _with(plan, noise=f"recorded:{name}")
        else:
            noise = degrade.coloured_noise(plan.noise, n, rate, rng)
        x = degrade.add_noise(x, rate, noise, plan.snr_db)
    x = _band(plan, x, rate)
    if _set(plan.clip_fraction):
        x = degrade.clip(x, plan.clip_fraction)
    if _set(plan.ns_oversubtract):
        x = processing.noise_suppressor(x, rate, plan.ns_oversubtract, plan.ns_floor_db)
    if _set(plan.agc_max_gain_db):
        x = processing.agc(x, rate, -26.0, plan.agc_max_gain_db, 0.02, plan.agc_release_s)
    if plan.level == "jumps":
        n_seg = int(rng.integers(2, 5))
        x = degrade.gain_jumps(
            x, rate, [float(rng.choice([-1.0, 1.0]) * plan.level_db * (i % 2)) for i in range(n_seg)]
        )
    elif plan.level:
        x = degrade.set_level(x, rate, plan.level_db)
    loss = NAN
    lost: np.ndarray | None = None
    n_frames = int(np.ceil(n / (degrade.FRAME_S * rate)))
    if _set(plan.loss_rate):
        lost = _loss(plan, n_frames + 8, rng)
    first_bw, switch = _switch(plan, n, rate)
    call = None
    spec = None
    if plan.codec_impl == "libopus":
        call = opus.OpusCall(plan.codec_kbps, fec=plan.loss_concealment == "plc+fec", bandwidth_hz=first_bw)
        plc_lost = lost if plan.loss_concealment.startswith("plc") else None
        x = opus.transmit(x, call, plc_lost, switch)
    elif plan.codec:
        spec = CodecSpec(plan.codec, plan.codec_kbps)
        x = run_codec(x, rate, spec)
    if lost is not None:
        if plan.loss_concealment in ("zero", "repeat"):
            x = degrade.packet_loss(x, rate, lost[:n_frames], plan.loss_concealment)
        loss = float(lost[:n_frames].mean())
    if plan.jitter_spikes > 0:
        times = _spike_times(plan.jitter_spikes, n / rate, lost, rng)
        shares = rng.dirichlet(np.ones(plan.jitter_spikes)) * plan.jitter_s
        x = processing.jitter_stretch(x, rate, list(zip(times.tolist(), shares.tolist(), strict=True)))
    if _set(plan.playback_gain_db):
        x = degrade.saturate(x, plan.playback_gain_db)
    bw = source_bandwidth_hz
    if plan.band or plan.codec:
        path = _band(plan, clean, rate)
        if call is not None:
            path = opus.transmit(path, call, None, switch)
        elif spec is not None:
            path = run_codec(path, rate, spec)
        if switch is not None:
            cut = switch[0] * opus.FRAME
            measured = min(effective_bandwidth_hz(path[:cut], rate), effective_bandwidth_hz(path[cut:], rate))
        else:
            measured = effective_bandwidth_hz(path, rate)
        bw = min(source_bandwidth_hz, measured)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    return Applied(x, bw, loss, plan)


def _with(plan: Plan, **changes: object) -> Plan:
    return replace(plan, **changes)  # type: ignore[arg-type]
