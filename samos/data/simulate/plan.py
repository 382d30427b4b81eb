"""A clip's degradation plan: drawn at random (seeded) from the config, applied in a fixed chain order.

Chain (the order a call takes): room (reverb) -> background noise -> capture band limit -> clipping ->
talker level -> codec -> packet loss. Every parameter is a flat field so it can go to the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from samos.audio import SPEC_RATE
from samos.data.simulate import degrade
from samos.data.simulate.codecs import CodecSpec, run_codec
from samos.data.simulate.config import DegradeConfig
from samos.data.simulate.measure import effective_bandwidth_hz


@dataclass(frozen=True)
class Plan:
    """Degradation parameters of one clip; empty strings / NaN mean 'not applied'."""

    band: str = ""
    """``lowpass``, ``highpass``, ``telephone`` or ''."""
    band_hz: float = float("nan")
    codec: str = ""
    codec_kbps: float = float("nan")
    loss_rate: float = float("nan")
    loss_burst: float = float("nan")
    loss_concealment: str = ""
    noise: str = ""
    snr_db: float = float("nan")
    rt60_s: float = float("nan")
    drr_db: float = float("nan")
    clip_fraction: float = float("nan")
    level: str = ""
    """``quiet``, ``loud``, ``jumps`` or ''."""
    level_db: float = float("nan")

    @property
    def names(self) -> list[str]:
        """The applied degradations, in chain order."""
        out = []
        for flag, name in (
            (self.rt60_s == self.rt60_s, "reverb"),
            (bool(self.noise), "noise"),
            (bool(self.band), "band"),
            (self.clip_fraction == self.clip_fraction, "clip"),
            (bool(self.level), "level"),
            (bool(self.codec), "codec"),
            (self.loss_rate == self.loss_rate, "loss"),
        ):
            if flag:
                out.append(name)
        return out

    def row(self) -> dict[str, object]:
        d: dict[str, object] = asdict(self)
        d["degradations"] = "+".join(self.names) or "clean"
        return d


def _choice(rng: np.random.Generator, items: tuple | list):  # noqa: ANN202
    return items[int(rng.integers(len(items)))]


def sample_plan(cfg: DegradeConfig, rng: np.random.Generator, codecs: list[str]) -> Plan:
    """Draw one plan. ``codecs``: the codec names this machine can run (see codecs.available_codecs)."""
    if rng.random() < cfg.p_clean:
        return Plan()
    p: dict[str, object] = {}
    if rng.random() < cfg.p_reverb:
        p.update(rt60_s=float(rng.uniform(*cfg.rt60_s)), drr_db=float(rng.uniform(-3.0, 12.0)))
    if rng.random() < cfg.p_noise:
        p.update(noise=str(_choice(rng, cfg.noise_types)), snr_db=float(rng.uniform(*cfg.snr_db)))
    if rng.random() < cfg.p_band:
        kind = _choice(rng, ("lowpass", "lowpass", "lowpass", "highpass", "telephone"))
        hz = {
            "lowpass": float(_choice(rng, cfg.lowpass_hz)),
            "highpass": float(rng.uniform(150, 500)),
            "telephone": 3_400.0,
        }[kind]
        p.update(band=kind, band_hz=hz)
    if rng.random() < cfg.p_clip:
        p.update(clip_fraction=float(rng.uniform(*cfg.clip_fraction)))
    if rng.random() < cfg.p_level:
        kind = _choice(rng, ("quiet", "loud", "jumps"))
        db = (
            float(rng.uniform(*cfg.quiet_db))
            if kind == "quiet"
            else (float(rng.uniform(*cfg.loud_db)) if kind == "loud" else float(rng.uniform(8.0, 20.0)))
        )
        p.update(level=kind, level_db=db)
    if codecs and rng.random() < cfg.p_codec:
        name = str(_choice(rng, codecs))
        rates = {"opus": cfg.opus_kbps, "mp3": cfg.mp3_kbps, "aac": cfg.aac_kbps, "amr_nb": cfg.amr_nb_kbps}
        kbps = {"g722": 64.0, "mulaw": 64.0, "alaw": 64.0}.get(name) or float(_choice(rng, rates[name]))
        p.update(codec=name, codec_kbps=kbps)
    if rng.random() < cfg.p_loss:
        p.update(
            loss_rate=float(rng.uniform(*cfg.loss_rate)),
            loss_burst=float(_choice(rng, (1.0, 1.5, 3.0))),
            loss_concealment=str(_choice(rng, ("zero", "repeat"))),
        )
    if not p:  # not drawn as clean, so degrade it somehow: background noise is the commonest
        p.update(noise=str(_choice(rng, cfg.noise_types)), snr_db=float(rng.uniform(*cfg.snr_db)))
    return Plan(**p)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Applied:
    """The degraded clip, the speech path's bandwidth (Hz) and the realised loss rate."""

    audio: np.ndarray
    path_bandwidth_hz: float
    loss_realised: float


def _band(plan: Plan, x: np.ndarray, rate: int) -> np.ndarray:
    if plan.band == "lowpass":
        return degrade.lowpass(x, rate, plan.band_hz)
    if plan.band == "highpass":
        return degrade.highpass(x, rate, plan.band_hz)
    if plan.band == "telephone":
        return degrade.telephone_band(x, rate)
    return x


def apply_plan(
    plan: Plan,
    clean: np.ndarray,
    rng: np.random.Generator,
    source_bandwidth_hz: float,
    babble_talkers: Callable[[], list[np.ndarray]],
    rate: int = SPEC_RATE,
) -> Applied:
    """Run the chain on ``clean`` (float32 ``(samples,)`` at ``rate``).

    ``babble_talkers`` is called only for babble noise and returns other talkers' clean utterances.
    The path bandwidth is measured on the clean clip passed through the band limit and the codec only
    (so that wide-band noise cannot pass for speech bandwidth); without those stages it is the
    source's bandwidth.
    """
    x = clean.astype(np.float32, copy=True)
    if plan.rt60_s == plan.rt60_s:
        x = degrade.reverb(x, rate, plan.rt60_s, plan.drr_db, rng)
    if plan.noise:
        noise = (
            degrade.babble(babble_talkers(), len(x), rng)
            if plan.noise == "babble"
            else degrade.coloured_noise(plan.noise, len(x), rate, rng)
        )
        x = degrade.add_noise(x, rate, noise, plan.snr_db)
    x = _band(plan, x, rate)
    if plan.clip_fraction == plan.clip_fraction:
        x = degrade.clip(x, plan.clip_fraction)
    if plan.level == "jumps":
        n_seg = int(rng.integers(2, 5))
        x = degrade.gain_jumps(
            x, rate, [float(rng.choice([-1.0, 1.0]) * plan.level_db * (i % 2)) for i in range(n_seg)]
        )
    elif plan.level:
        x = degrade.set_level(x, rate, plan.level_db)
    spec = CodecSpec(plan.codec, plan.codec_kbps) if plan.codec else None
    if spec is not None:
        x = run_codec(x, rate, spec)
    loss = float("nan")
    if plan.loss_rate == plan.loss_rate:
        n_frames = int(np.ceil(len(x) / (degrade.FRAME_S * rate)))
        lost = degrade.loss_pattern(n_frames, plan.loss_rate, plan.loss_burst, rng)
        x = degrade.packet_loss(x, rate, lost, plan.loss_concealment)
        loss = float(lost.mean())
    bw = source_bandwidth_hz
    if plan.band or spec is not None:
        path = _band(plan, clean, rate)
        if spec is not None:
            path = run_codec(path, rate, spec)
        bw = min(source_bandwidth_hz, effective_bandwidth_hz(path, rate))
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    return Applied(x, bw, loss)
