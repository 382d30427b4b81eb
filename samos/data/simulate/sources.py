"""Clean speech for the simulator: index the installed speech collections and build utterances.

Sources (each unit is one short recording by one talker):

- ``klettres``: Debian ``klettres-data``, letters and syllables in ~20 languages, 44.1 kHz Vorbis;
  the talker key is the language folder.
- ``fillets``: Debian ``fillets-ng-data-cs``, Czech spoken game dialogue, mostly 22.05 kHz Vorbis
  (so at most ~11 kHz of bandwidth); the talker key is the character code in the file name.
- ``espeak``: ``espeak-ng`` synthesis at 22.05 kHz of dialogue text shipped with fillets-ng; one talker
  per voice.
- ``p835``: the clean talkers of the P.835 test set (off by default, see docs/DATA.md).
- ``tuxpaint``: Debian ``tuxpaint-stamps-default``, spoken descriptions of the stamps in ~12
  languages, 44.1 kHz Vorbis, most of them full band (18-20 kHz measured); the talker key is the
  language (each language was read by its translators; one key per language is the safe grouping).

An utterance concatenates trimmed units of ONE talker with pauses, is resampled to 48 kHz and
normalised to an active level. Its effective bandwidth is measured, never assumed from the file rate.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO
from pathlib import Path

import numpy as np
import soundfile as sf

from samos.audio import SPEC_RATE, AudioError, load_audio, resample
from samos.data.simulate.config import SourcesConfig, UtteranceConfig
from samos.data.simulate.measure import active_mask, effective_bandwidth_hz, normalise_level

SOURCE_NAMES = ("klettres", "fillets", "espeak", "p835", "tuxpaint")
TRIM_MARGIN_S = 0.05


class SourceError(ValueError):
    """A configured speech source that is missing or empty."""


@dataclass(frozen=True)
class Unit:
    """One short clean recording (``path``) or one espeak-ng text (``text`` with ``voice``)."""

    source: str
    talker: str
    path: str = ""
    text: str = ""
    voice: str = ""


@dataclass(frozen=True)
class Utterance:
    """A clean utterance at 48 kHz: ``audio`` float32 ``(samples,)`` at the configured active level."""

    audio: np.ndarray
    source: str
    talker: str
    n_units: int
    native_rate: int
    """Lowest sample rate (Hz) of the units it was built from."""
    bandwidth_hz: float
    """Measured effective bandwidth (Hz) of the clean utterance."""


# ------------------------------------------------------------------------------------------ indexing
def _require_dir(path: str, what: str, package: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise SourceError(
            f"{what}: folder {p} not found (install the Debian package {package}, "
            f"or set it to null in the simulate config)"
        )
    return p


def index_klettres(root: str) -> list[Unit]:
    """All klettres recordings under ``root`` (``<root>/<lang>/{alpha,syllab}/*.ogg``)."""
    base = _require_dir(root, "sources.klettres", "klettres-data")
    units = [
        Unit("klettres", f"klettres-{p.relative_to(base).parts[0]}", path=str(p))
        for p in sorted(base.glob("*/*/*.ogg"))
    ]
    if not units:
        raise SourceError(f"sources.klettres: no .ogg recordings under {base}")
    return units


def index_fillets(root: str) -> list[Unit]:
    """Czech dialogue lines under ``root`` (``<root>/sound/<level>/cs/<level>-<talker>-<name>.ogg``)."""
    base = _require_dir(root, "sources.fillets", "fillets-ng-data-cs")
    units = []
    for p in sorted(base.glob("sound/*/cs/*.ogg")):
        parts = p.stem.split("-")
        talker = parts[1] if len(parts) >= 3 else "x"
        units.append(Unit("fillets", f"fillets-{talker}", path=str(p)))
    if not units:
        raise SourceError(f"sources.fillets: no Czech dialogue (.ogg) under {base}/sound/*/cs")
    return units


_DIALOG = re.compile(r'dialogId\(\s*"[^"]*"\s*,\s*[^,]*,\s*"((?:[^"\\]|\\.)+)"\s*\)')


def dialogue_text(root: str, lang: str) -> list[str]:
    """Sentences of the fillets-ng dialogue scripts in ``lang`` (falls back to English)."""
    return list(_dialogue_text(str(root), lang))


@lru_cache(maxsize=64)
def _dialogue_text(root: str, lang: str) -> tuple[str, ...]:
    # read once per process: several voices share a language (en, en-us) and the catalog is built
    # by the parent and by every worker
    base = Path(root) / "script"
    for code in (lang, "en"):
        lines = []
        for f in sorted(base.glob(f"*/dialogs_{code}.lua")):
            for m in _DIALOG.finditer(f.read_text(encoding="utf-8", errors="replace")):
                t = m.group(1).replace('\\"', '"').strip()
                if 3 <= len(t) <= 160:
                    lines.append(t)
        if lines:
            return tuple(lines)
    return ()


def index_espeak(cfg: SourcesConfig) -> list[Unit]:
    """One unit per (voice, sentence); sentences come from the fillets-ng dialogue scripts."""
    if shutil.which("espeak-ng") is None:
        raise SourceError(
            "sources.espeak: the espeak-ng program is not installed (apt-get install espeak-ng, "
            "or set sources.espeak: false)"
        )
    if cfg.fillets is None:
        raise SourceError("sources.espeak takes its text from the fillets-ng scripts: set sources.fillets")
    units = []
    for voice in cfg.espeak_voices:
        for text in dialogue_text(cfg.fillets, voice.split("-")[0]):
            units.append(Unit("espeak", f"espeak-{voice}", text=text, voice=voice))
    if not units:
        raise SourceError(f"sources.espeak: no dialogue text under {cfg.fillets}/script")
    return units


def index_p835(root: str) -> list[Unit]:
    """The clean P.835 talkers (``*.wav``; ``f1_adj.wav`` is talker ``f1``)."""
    base = _require_dir(root, "sources.p835_clean", "(the project's shared P.835 data)")
    units = [Unit("p835", f"p835-{p.stem.split('_')[0]}", path=str(p)) for p in sorted(base.glob("*.wav"))]
    if not units:
        raise SourceError(f"sources.p835_clean: no .wav files in {base}")
    return units


def index_tuxpaint(root: str) -> list[Unit]:
    """Spoken stamp descriptions under ``root`` (``**/<stamp>_desc_<lang>.ogg``)."""
    base = _require_dir(root, "sources.tuxpaint", "tuxpaint-stamps-default")
    units = []
    for p in sorted(base.rglob("*_desc_*.ogg")):
        lang = p.stem.rsplit("_desc_", 1)[1]
        units.append(Unit("tuxpaint", f"tuxpaint-{lang}", path=str(p)))
    if not units:
        raise SourceError(f"sources.tuxpaint: no spoken descriptions (*_desc_*.ogg) under {base}")
    return units


@dataclass(frozen=True)
class Catalog:
    """Units grouped by source and talker, with the share of utterances drawn from each source."""

    talkers: dict[str, dict[str, tuple[Unit, ...]]]
    weights: dict[str, float]

    @staticmethod
    def build(cfg: SourcesConfig) -> Catalog:
        found: dict[str, list[Unit]] = {}
        if cfg.klettres is not None:
            found["klettres"] = index_klettres(cfg.klettres)
        if cfg.fillets is not None:
            found["fillets"] = index_fillets(cfg.fillets)
        if cfg.espeak:
            found["espeak"] = index_espeak(cfg)
        if cfg.p835_clean is not None:
            found["p835"] = index_p835(cfg.p835_clean)
        if cfg.tuxpaint is not None:
            found["tuxpaint"] = index_tuxpaint(cfg.tuxpaint)
        pairs = zip(SOURCE_NAMES, cfg.source_weights, strict=True)
        weights = {n: w for n, w in pairs if n in found and w > 0}
        if not weights:
            raise SourceError(
                "no speech source is enabled with a positive weight (see sources.* in the config)"
            )
        talkers: dict[str, dict[str, tuple[Unit, ...]]] = {}
        for name in weights:
            groups: dict[str, list[Unit]] = {}
            for u in found[name]:
                groups.setdefault(u.talker, []).append(u)
            talkers[name] = {k: tuple(v) for k, v in sorted(groups.items())}
        return Catalog(talkers, weights)

    def pick_talker(self, rng: np.random.Generator) -> tuple[str, str]:
        names = sorted(self.weights)
        p = np.array([self.weights[n] for n in names])
        source = names[int(rng.choice(len(names), p=p / p.sum()))]
        talker = sorted(self.talkers[source])[int(rng.integers(len(self.talkers[source])))]
        return source, talker


# ------------------------------------------------------------------------------------ unit loading
def synthesize(text: str, voice: str) -> tuple[np.ndarray, int]:
    """espeak-ng synthesis of ``text``: (mono float32, 22050 Hz)."""
    try:
        out = subprocess.run(
            ["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, timeout=60, check=True
        )
        data, sr = sf.read(BytesIO(out.stdout), dtype="float32")
    except (OSError, subprocess.SubprocessError, RuntimeError) as e:
        raise AudioError(f"espeak-ng failed for voice {voice!r}: {e}") from None
    return np.asarray(data, dtype=np.float32).reshape(-1), int(sr)


@lru_cache(maxsize=512)
def load_unit(unit: Unit) -> tuple[np.ndarray, int]:
    """The unit at 48 kHz, trimmed of leading and trailing silence; also its native rate in Hz."""
    audio, sr = synthesize(unit.text, unit.voice) if unit.text else load_audio(unit.path)
    audio = resample(np.clip(audio, -1.0, 1.0), sr, SPEC_RATE)
    mask, n = active_mask(audio, SPEC_RATE)
    idx = np.nonzero(mask)[0]
    if idx.size:
        margin = int(TRIM_MARGIN_S * SPEC_RATE)
        audio = audio[max(0, idx[0] * n - margin) : min(len(audio), (idx[-1] + 1) * n + margin)]
    return audio, sr


def make_utterance(catalog: Catalog, cfg: UtteranceConfig, rng: np.random.Generator) -> Utterance:
    """Concatenate units of one randomly drawn talker, with random pauses, up to a random duration."""
    source, talker = catalog.pick_talker(rng)
    units = catalog.talkers[source][talker]
    target = int(rng.uniform(*cfg.seconds) * SPEC_RATE)
    parts: list[np.ndarray] = [np.zeros(int(rng.uniform(0.1, 0.3) * SPEC_RATE), np.float32)]
    total = 0
    rates: list[int] = []  # native rates of the units used
    for _ in range(200):
        audio, sr = load_unit(units[int(rng.integers(len(units)))])
        if total + len(audio) > target and rates:
            break
        parts += [audio, np.zeros(int(rng.uniform(*cfg.pause) * SPEC_RATE), np.float32)]
        total += len(audio) + len(parts[-1])
        rates.append(sr)
        if total >= target:
            break
    out = np.concatenate(parts)[: max(target, 1)]
    if len(out) < target:
        out = np.pad(out, (0, target - len(out)))
    out = normalise_level(out, SPEC_RATE, cfg.level_db)
    if np.abs(out).max() > 0.99:  # a very peaky unit: keep the level as high as the peak allows
        out = out * (0.99 / np.abs(out).max())
    return Utterance(
        out.astype(np.float32), source, talker, len(rates), min(rates), effective_bandwidth_hz(out, SPEC_RATE)
    )
