"""``samos bench vad``: the monitor's speech gate on speech in noise, noise alone and silence.

Every signal goes through the monitor's own path (:class:`samos.monitor.stream.StreamProcessor`:
normalise -> 4 s windows every 1 s -> speech detector -> status), and each window is also judged
by the energy VAD that the Silero detector replaced (kept here as the reference: 20 ms frames,
active when at least -55 dBov and 3 dB above the window's 10th-percentile frame level, a window
``ok`` when 15 % of its frames are active). The figure is the share of windows that get a MOS
(status ``ok``), old and new.

1. ``p835``: each clip of the P.835 sets (fb48k, wb16k, nb8k; ``--p835``), per condition.
2. ``mix``: the six clean P.835 talkers (``clean48k/{f,m}{1,2,3}.wav`` joined, about 28 s) plus white
   noise or each recorded noise of ``--noise`` (mono, looped) at each SNR of ``--snrs``. Speech at
   -26 dBFS; SNR from RMS over the whole talk, its pauses included.
3. ``no_speech``: each noise alone at ``--levels`` dBFS, -70 dBFS white noise and digital silence:
   the share of windows scored (a false alarm of the gate) and the share called ``silence``.
4. ``rated`` (``--rated M.csv``, any number): every clip of a rated manifest (any format samos reads,
   e.g. a generic CSV with ``path``, relative to the manifest's folder, and ``mos``), by the quality
   its raters gave it: the share of windows scored and of clips with no scored window in each MOS
   band. The gate must hold on the worst calls: a call too degraded to sound like speech to the
   detector gets no MOS, hence no alert.
5. ``cost`` (alone with ``--cost-only``, a second): the detector's CPU per 32 ms frame with the vendored
   Silero graph and with the dense graph the monitor loads (:mod:`samos.export.vad_dense`), measured
   side by side in one run on the talkers at 16 kHz, and their largest probability difference.

Output: markdown tables (``--json``: one object ``{"gate": {...}, "p835": {SET: {COND: {"old", "new", "n"}}},
"mix": {NOISE: {SNR: {"old", "new", "n"}}}, "no_speech": {NOISE: {LEVEL: {"old", "new", "silence",
"n"}}}, "rated": {MANIFEST: {BAND: {"old", "new", "n", "clips", "unscored_clips"}}}, "cost":
{"us_per_frame": {"source", "dense"}, "cpu_s_per_stream_s": {...}, "source_over_dense",
"max_prob_difference", "frames"}, "seconds": ...}``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import load_audio, resample, to_mono
from samos.data.manifest import read_manifest
from samos.monitor.config import WindowConfig
from samos.monitor.source import AudioChunk
from samos.monitor.stream import StreamProcessor

DEFAULT_P835 = "/work/shared/data/p835"
DEFAULT_NOISE = "/work/shared/data/noise"
DEFAULT_SNRS = (-10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 30.0)
DEFAULT_LEVELS = (-50.0, -40.0, -30.0, -20.0, -10.0)
SPEECH_DBFS = -26.0
TALKERS = ("f1", "f2", "f3", "m1", "m2", "m3")
SETS = (("fb48k", "fb48k.csv"), ("wb16k", "wb16k.csv"), ("nb8k", "nb8k_condition_level.csv"))
"""(set, manifest) of the P.835 folder."""
RATE = 48_000


class BenchError(ValueError):
    """Missing or unreadable inputs (one line, exit status 2)."""


def energy_ok(wave48: np.ndarray) -> str:
    """The energy VAD the speech detector replaced: status ``silence``, ``low_speech`` or ``ok``."""
    frame = 960
    n = len(wave48) // frame
    if n == 0:
        return "silence"
    f = wave48[: n * frame].reshape(n, frame).astype(np.float64)
    levels = 10 * np.log10(np.maximum((f * f).mean(axis=1), 1e-12))
    level = 10 * np.log10(max(float(np.mean(10 ** (levels / 10))), 1e-12))
    if level < -60.0:
        return "silence"
    active = (levels >= -55.0) & (levels >= np.percentile(levels, 10) + 3.0)
    return "ok" if active.mean() >= 0.15 else "low_speech"


def statuses(audio: np.ndarray, rate: int, cfg: WindowConfig) -> tuple[list[str], list[str]]:
    """Old and new status of every window of one signal streamed through the monitor's path."""
    proc = StreamProcessor(rate, cfg)
    pending = proc.push(AudioChunk(audio.astype(np.float32), rate)) + proc.flush()
    return [energy_ok(p.window.wave48) for p in pending], [p.status for p in pending]


def _share(tally: dict[str, Any], old: Iterable[str], new: Iterable[str]) -> None:
    old, new = list(old), list(new)
    tally["n"] = tally.get("n", 0) + len(new)
    tally["old_ok"] = tally.get("old_ok", 0) + sum(s == "ok" for s in old)
    tally["new_ok"] = tally.get("new_ok", 0) + sum(s == "ok" for s in new)
    tally["silence"] = tally.get("silence", 0) + sum(s == "silence" for s in new)


def _final(t: dict[str, Any], silence: bool = False) -> dict[str, Any]:
    n = max(t["n"], 1)
    out = {"old": round(t["old_ok"] / n, 3), "new": round(t["new_ok"] / n, 3), "n": t["n"]}
    if silence:
        out["silence"] = round(t["silence"] / n, 3)
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def load_noises(folder: Path, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """White noise and every ``*.ogg``/``*.wav``/``*.flac`` of ``folder``: mono, 48 kHz, looped to ``n``
    samples, unit RMS."""
    rng = np.random.default_rng(seed)
    out = {"white": rng.standard_normal(n)}
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".ogg", ".wav", ".flac"))
    if not files:
        raise BenchError(f"no noise recordings (*.ogg, *.wav, *.flac) in {folder}")
    for p in files:
        a, r = load_audio(p)
        out[p.stem] = np.resize(resample(to_mono(a), r, RATE), n)
    return {k: (v / max(_rms(v), 1e-12)).astype(np.float32) for k, v in out.items()}


def talk(p835: Path) -> np.ndarray:
    """The six clean talkers joined, 48 kHz, at ``SPEECH_DBFS``."""
    parts = []
    for t in TALKERS:
        path = p835 / "clean48k" / f"{t}.wav"
        if not path.is_file():
            raise BenchError(f"missing clean talker {path}")
        a, r = load_audio(path)
        parts.append(resample(to_mono(a), r, RATE))
    x = np.concatenate(parts)
    return (x * 10 ** (SPEECH_DBFS / 20) / _rms(x)).astype(np.float32)


def bench_p835(p835: Path, cfg: WindowConfig) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, manifest in SETS:
        path = p835 / manifest
        if not path.is_file():
            raise BenchError(f"missing P.835 manifest {path}")
        tally: dict[str, dict[str, Any]] = {}
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                a, r = load_audio(p835 / row["path"])
                old, new = statuses(to_mono(a), r, cfg)
                _share(tally.setdefault(row["condition"], {}), old, new)
        out[name] = {c: _final(tally[c]) for c in sorted(tally, key=lambda c: int(c[1:]))}
    return out


def bench_mix(
    speech: np.ndarray, noises: dict[str, np.ndarray], snrs: Iterable[float], cfg: WindowConfig
) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, noise in noises.items():
        out[name] = {}
        for snr in snrs:
            x = speech + noise[: len(speech)] * _rms(speech) * 10 ** (-snr / 20)
            tally: dict[str, Any] = {}
            _share(tally, *statuses(x, RATE, cfg))
            out[name][f"{snr:g}"] = _final(tally)
    return out


def bench_no_speech(
    noises: dict[str, np.ndarray], levels: Iterable[float], cfg: WindowConfig, seconds: float = 14.0
) -> dict[str, dict[str, dict[str, Any]]]:
    n = int(seconds * RATE)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, noise in noises.items():
        out[name] = {}
        for level in levels:
            tally: dict[str, Any] = {}
            _share(tally, *statuses(noise[:n] * 10 ** (level / 20), RATE, cfg))
            out[name][f"{level:g}"] = _final(tally, silence=True)
    for name, x in (
        ("white -70 dBFS", noises["white"][:n] * 10 ** (-70 / 20)),
        ("digital silence", np.zeros(n, np.float32)),
    ):
        tally = {}
        _share(tally, *statuses(x, RATE, cfg))
        out[name] = {"-": _final(tally, silence=True)}
    return out


MOS_BANDS = (1.5, 2.0, 2.5, 3.0, 3.5)
"""Upper edges of the MOS bands of the ``rated`` table (the last band is everything from 3.5 up)."""


def mos_band(mos: float) -> str:
    """The band of ``MOS_BANDS`` that ``mos`` falls in, e.g. ``"1.5-2"``, ``"<1.5"``, ``">=3.5"``."""
    lo = None
    for hi in MOS_BANDS:
        if mos < hi:
            return f"<{hi:g}" if lo is None else f"{lo:g}-{hi:g}"
        lo = hi
    return f">={MOS_BANDS[-1]:g}"


def bench_rated(manifest: Path, cfg: WindowConfig) -> dict[str, dict[str, Any]]:
    """Share of windows scored, and clips with none scored, per MOS band of a rated manifest (any
    format :func:`samos.data.manifest.read_manifest` reads; a row it cannot use is an error here)."""
    if not manifest.is_file():
        raise BenchError(f"no such manifest {manifest}")
    rated = read_manifest(manifest)
    if rated.skipped:
        raise BenchError(f"{manifest}: " + "; ".join(x.strip() for x in rated.skipped.summary().splitlines()))
    if not len(rated):
        raise BenchError(f"{manifest}: no rated clips")
    tally: dict[str, dict[str, Any]] = {}
    for item in rated:
        a, r = load_audio(item.path)
        old, new = statuses(to_mono(a), r, cfg)
        t = tally.setdefault(mos_band(item.mos), {})
        _share(t, old, new)
        t["clips"] = t.get("clips", 0) + 1
        t["unscored_clips"] = t.get("unscored_clips", 0) + (not any(s == "ok" for s in new))
    order = [mos_band(x) for x in (1.0, *MOS_BANDS)]
    return {
        b: {**_final(tally[b]), "clips": tally[b]["clips"], "unscored_clips": tally[b]["unscored_clips"]}
        for b in order
        if b in tally
    }


def bench_cost(speech16: np.ndarray, rounds: int = 5) -> dict[str, Any]:
    """CPU per 32 ms frame of the detector's two graphs, side by side in this process: the vendored
    Silero source and the dense graph the monitor loads, each called as the monitor calls it (one
    block of frames per 1 s hop, state handed on), rounds alternated. Also their largest probability
    difference over ``speech16`` (16 kHz)."""
    from samos.runtime.vad import FRAME, VAD_SOURCE_MODEL, SpeechDetector, VadModel

    graphs = {"source": VadModel(VAD_SOURCE_MODEL), "dense": VadModel()}
    probs = {k: SpeechDetector(m).push(speech16) for k, m in graphs.items()}  # also warms both up
    hop = 16_000
    cpu = {k: 0.0 for k in graphs}
    for _ in range(rounds):
        for k, m in graphs.items():
            det = SpeechDetector(m)
            t = time.process_time()
            for i in range(0, len(speech16), hop):
                det.push(speech16[i : i + hop])
            cpu[k] += time.process_time() - t
    frames = rounds * len(probs["dense"])  # each round pushes the whole signal through each graph
    us = {k: 1e6 * v / frames for k, v in cpu.items()}
    per_second = 16_000 / FRAME  # frames per stream-second
    return {
        "frames": frames,
        "us_per_frame": {k: round(v, 1) for k, v in us.items()},
        "cpu_s_per_stream_s": {k: round(v * per_second * 1e-6, 5) for k, v in us.items()},
        "source_over_dense": round(us["source"] / us["dense"], 2),
        "max_prob_difference": float(np.abs(probs["source"] - probs["dense"]).max()),
    }


def markdown_cost(c: dict[str, Any]) -> str:
    u, s = c["us_per_frame"], c["cpu_s_per_stream_s"]
    return "\n".join(
        [
            f"Speech detector cost, one CPU thread, 1 s blocks ({c['frames']} frames each):",
            "",
            "| graph | us per 32 ms frame | CPU-s per stream-second |",
            "|---|---|---|",
            f"| Silero source (vendored) | {u['source']} | {s['source']} |",
            f"| dense (loaded by the monitor) | {u['dense']} | {s['dense']} |",
            "",
            f"source / dense: {c['source_over_dense']}x; largest probability difference "
            f"{c['max_prob_difference']:.1e}",
        ]
    )


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def markdown(rep: dict[str, Any]) -> str:
    """The report as markdown tables: ``old -> new`` share of windows scored in each cell."""
    g = rep["gate"]
    lines = [
        "Share of 4 s windows (hop 1 s) that get a MOS: energy VAD -> Silero VAD "
        f"(speech_threshold {g['speech_threshold']:g}, min_active {g['min_active']:g})",
        "",
    ]
    p835 = rep["p835"]
    conds = list(next(iter(p835.values())))
    lines += ["| condition | " + " | ".join(p835) + " |", "|---|" + "---|" * len(p835)]
    for c in conds:
        cells = [
            f"{_pct(p835[s][c]['old'])} -> {_pct(p835[s][c]['new'])}" if c in p835[s] else "" for s in p835
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines.append("")
    mix = rep["mix"]
    snrs = list(next(iter(mix.values())))
    lines += ["| talkers + noise, SNR dB | " + " | ".join(snrs) + " |", "|---|" + "---|" * len(snrs)]
    for name, row in mix.items():
        cells = [f"{_pct(row[s]['old'])} -> {_pct(row[s]['new'])}" for s in snrs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    ns = rep["no_speech"]
    levels = list(next(iter(ns.values())))
    lines += [
        "| no speech, dBFS (scored; new: silence) | " + " | ".join(levels) + " |",
        "|---|" + "---|" * len(levels),
    ]
    for name, row in ns.items():
        cols = levels if list(row) != ["-"] else ["-"]  # silence rows have one cell
        cells = [f"{_pct(row[c]['old'])} -> {_pct(row[c]['new'])} ({_pct(row[c]['silence'])})" for c in cols]
        cells += [""] * (len(levels) - len(cells))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, bands in rep.get("rated", {}).items():
        lines += [
            "",
            f"| {name}: rated MOS | windows scored | clips with no scored window |",
            "|---|---|---|",
        ]
        for b, t in bands.items():
            lines.append(
                f"| {b} | {_pct(t['old'])} -> {_pct(t['new'])} (n={t['n']}) | "
                f"{t['unscored_clips']} of {t['clips']} |"
            )
    lines.append("")
    lines.append(f"({rep['seconds']:.0f} s)")
    return "\n".join(lines)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--p835", default=DEFAULT_P835, help=f"P.835 folder (default {DEFAULT_P835})")
    p.add_argument("--noise", default=DEFAULT_NOISE, help=f"recorded noises (default {DEFAULT_NOISE})")
    p.add_argument(
        "--snrs", type=_floats, default=DEFAULT_SNRS, help="SNRs in dB, comma-separated (--snrs=-10,0,20)"
    )
    p.add_argument(
        "--levels", type=_floats, default=DEFAULT_LEVELS, help="noise-only levels, dBFS (--levels=-40,-20)"
    )
    w = WindowConfig()
    p.add_argument(
        "--speech-threshold",
        type=float,
        default=w.speech_threshold,
        help=f"probability of a speech frame (default: the monitor's, {w.speech_threshold})",
    )
    p.add_argument(
        "--min-active",
        type=float,
        default=w.min_active,
        help=f"speech share a scored window needs (default: the monitor's, {w.min_active})",
    )
    p.add_argument(
        "--rated",
        action="append",
        default=[],
        metavar="M.csv",
        help="a rated manifest (path, mos): windows scored per MOS band (repeatable)",
    )
    p.add_argument(
        "--cost-only",
        action="store_true",
        help="only the detector's CPU per frame: the vendored Silero graph and the dense one, side by side",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--out", help="also write the report (JSON) here")


def run(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    try:
        cfg = WindowConfig(speech_threshold=args.speech_threshold, min_active=args.min_active)
        p835, noise_dir = Path(args.p835), Path(args.noise)
        if not p835.is_dir() or not noise_dir.is_dir():
            raise BenchError(f"no such folder: {p835 if not p835.is_dir() else noise_dir}")
        speech = talk(p835)
        cost = bench_cost(resample(speech, RATE, 16_000).astype(np.float32))
        if args.cost_only:
            rep: dict[str, Any] = {"cost": cost}
        else:
            noises = load_noises(noise_dir, len(speech))
            rep = {
                "gate": {"speech_threshold": cfg.speech_threshold, "min_active": cfg.min_active},
                "p835": bench_p835(p835, cfg),
                "mix": bench_mix(speech, noises, args.snrs, cfg),
                "no_speech": bench_no_speech(noises, args.levels, cfg),
                "cost": cost,
            }
            if args.rated:
                rep["rated"] = {m: bench_rated(Path(m), cfg) for m in args.rated}
    except (ValueError, OSError, RuntimeError) as e:  # BenchError, ConfigError, unreadable audio
        print(f"samos bench vad: {e}", file=sys.stderr)
        return 2
    rep["seconds"] = round(time.perf_counter() - t0, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(rep, indent=1) + "\n")
    if args.json:
        print(json.dumps(rep))
    else:
        print(markdown_cost(cost) if args.cost_only else markdown(rep) + "\n\n" + markdown_cost(cost))
    return 0
