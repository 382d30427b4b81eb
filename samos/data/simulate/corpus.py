"""Build a rated corpus: clean utterance -> degradation plan -> pseudo-MOS label -> wav + manifest.

Layout of ``out``::

    simulate.yaml     the config used (a rerun with a different config is refused)
    audio/NNNNNN.wav  48 kHz mono clips
    meta/NNNNNN.json  one manifest row per finished clip (written last, atomically: resumable)
    manifest.csv      all rows, sorted (columns path, mos, split, sr, ... see COLUMNS)
    summary.json      counts and label histogram

Clip ``i`` depends only on (seed, i): reruns, resumed runs and any number of workers give the same
corpus.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from samos.audio import SPEC_RATE
from samos.config import ConfigError, dump_yaml, from_dict, load_yaml, to_dict
from samos.data.manifest import ManifestError
from samos.data.simulate import opus
from samos.data.simulate.codecs import available_codecs
from samos.data.simulate.config import SimulateConfig
from samos.data.simulate.labels import DistillMOS, DnsmosBak, Labeller, TeacherCache
from samos.data.simulate.noises import load_noise_bank
from samos.data.simulate.plan import Plan, apply_plan, sample_plan
from samos.data.simulate.sources import Catalog, make_utterance

OTHER_TALKER_TRIES = 5
"""Draws of another utterance until its talker differs from the clip's."""
SUMMARY_COLUMNS = ("split", "source", "codec", "noise", "band", "loss_model", "echo", "talker2", "processing")
"""Manifest columns counted value by value in the summary (those a manifest lacks are skipped)."""
MANIFEST_EVERY = 50
"""Rewrite manifest.csv after every this many new clips."""


def _columns() -> list[str]:
    plan_cols = [k for k in Plan().row() if k != "degradations"]
    head = [
        "path",
        "mos",
        "split",
        "sr",
        "seconds",
        "source",
        "talker",
        "n_units",
        "source_rate",
        "source_bw_hz",
        "path_bw_hz",
        "teacher_mos",
        "high_band_r",
        "dnsmos_bak",
        "degradations",
    ]
    return head + plan_cols + ["loss_realised", "active_db"]


COLUMNS = _columns()


class ClipMaker:
    """Makes clip ``i`` of a corpus (one per process: holds the source index and the teacher)."""

    def __init__(
        self,
        cfg: SimulateConfig,
        labeller: Labeller | None = None,
        catalog: Catalog | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        """``cache_dir``: where teacher scores are cached by clip content (None: no cache)."""
        self.cfg = cfg
        self.catalog = catalog if catalog is not None else Catalog.build(cfg.sources)
        self.libopus = opus.available()
        self.codecs = available_codecs()
        if self.libopus and "opus" not in self.codecs:
            self.codecs.append("opus")
        self.noise_bank = (
            load_noise_bank(cfg.degrade.noise_dir)
            if cfg.degrade.noise_dir is not None and "recorded" in cfg.degrade.noise_types
            else None
        )
        if labeller is None:
            name = cfg.labels.teacher
            teacher = DistillMOS(whole_clip=name == "distillmos_whole") if name != "none" else None
            cache = TeacherCache(cache_dir, teacher_id(name)) if cache_dir is not None else None
            bak, bak_cache = None, None
            if cfg.labels.bak_weight > 0:
                bak = DnsmosBak()
                if cache_dir is not None:  # next to the teacher's cache: cache/dnsmos_bak
                    bak_cache = TeacherCache(Path(cache_dir).parent / "dnsmos_bak", teacher_id("speechmos"))
            labeller = Labeller(teacher, cfg.labels.high_band, cache, bak, cfg.labels.bak_weight, bak_cache)
        self.labeller = labeller

    def clip(self, index: int) -> tuple[np.ndarray, dict[str, object]]:
        """Clip ``index``: (float32 ``(samples,)`` at 48 kHz, its manifest row without ``path``)."""
        from samos.data.simulate.measure import active_level_db

        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, index])
        utt = make_utterance(self.catalog, cfg.utterance, rng)
        plan = sample_plan(cfg.degrade, rng, self.codecs, self.libopus)

        def others(n: int) -> list[np.ndarray]:
            out = []
            for _ in range(n):  # other talkers than the clip's (a few tries: some sources have few)
                for _ in range(OTHER_TALKER_TRIES):
                    other = make_utterance(self.catalog, cfg.utterance, rng)
                    if other.talker != utt.talker:
                        break
                out.append(other.audio)
            return out

        applied = apply_plan(plan, utt.audio, rng, utt.bandwidth_hz, others, noise_bank=self.noise_bank)
        plan = applied.plan
        heard = as_written(applied.audio, cfg.pcm16) if cfg.labels.as_written else applied.audio
        label = self.labeller.label(heard, applied.path_bandwidth_hz)
        split_rng = np.random.default_rng([cfg.seed, index, 1])
        row: dict[str, object] = {
            "mos": round(label.mos, 4),
            "split": "val" if split_rng.random() < cfg.val_fraction else "train",
            "sr": SPEC_RATE,
            "seconds": round(len(applied.audio) / SPEC_RATE, 3),
            "source": utt.source,
            "talker": utt.talker,
            "n_units": utt.n_units,
            "source_rate": utt.native_rate,
            "source_bw_hz": round(utt.bandwidth_hz),
            "path_bw_hz": round(applied.path_bandwidth_hz),
            "teacher_mos": round(label.teacher_mos, 4),
            "high_band_r": round(label.high_band_r, 2),
            "dnsmos_bak": "" if label.dnsmos_bak is None else round(label.dnsmos_bak, 4),
            **plan.row(),
            "loss_realised": applied.loss_realised,
            "active_db": round(active_level_db(applied.audio, SPEC_RATE), 2),
        }
        return applied.audio, {k: _clean(v) for k, v in row.items()}


def _wav_subtype(pcm16: bool) -> str:
    """The corpus' wav sample format: what ``_write_clip`` writes and ``as_written`` reproduces."""
    return "PCM_16" if pcm16 else "FLOAT"


def as_written(audio: np.ndarray, pcm16: bool) -> np.ndarray:
    """The clip as its wav file holds it, float32 ``(samples,)`` as ``load_audio`` reads it back:
    written and read through soundfile in memory (16-bit PCM rounding and clipping, or float32)."""
    buf = io.BytesIO()
    sf.write(buf, audio, SPEC_RATE, subtype=_wav_subtype(pcm16), format="WAV")
    buf.seek(0)
    data, _ = sf.read(buf, dtype="float32", always_2d=False)
    return data


_TEACHER_PACKAGE = {"distillmos": "distillmos", "distillmos_whole": "distillmos", "speechmos": "speechmos"}


def teacher_id(name: str) -> str:
    """The teacher's name and its package's version (``distillmos_whole``: distillmos's): a cached
    score is reused only by the same teacher scoring the same way."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"{name}-{version(_TEACHER_PACKAGE.get(name, name))}"
    except PackageNotFoundError:
        return name


def _clean(v: object) -> object:
    if isinstance(v, float):
        return "" if math.isnan(v) else round(v, 4)
    return v


# ----------------------------------------------------------------------------------------- workers
_WORKER: ClipMaker | None = None


def _init_worker(cfg_dict: dict, cache_dir: str) -> None:
    global _WORKER
    _WORKER = ClipMaker(from_dict(SimulateConfig, cfg_dict), cache_dir=cache_dir)


def _write_clip(gen: ClipMaker, out: Path, index: int, pcm16: bool) -> dict[str, object]:
    name = f"{index:06d}"
    audio, row = gen.clip(index)
    wav = out / "audio" / f"{name}.wav"
    tmp = wav.with_suffix(".tmp.wav")
    sf.write(tmp, audio, SPEC_RATE, subtype=_wav_subtype(pcm16))
    os.replace(tmp, wav)
    row = {"path": f"audio/{name}.wav", **row}
    meta = out / "meta" / f"{name}.json"
    meta.with_suffix(".tmp").write_text(json.dumps(row))
    os.replace(meta.with_suffix(".tmp"), meta)
    return row


def _safe_clip(gen: ClipMaker, out: Path, index: int, pcm16: bool) -> dict[str, object]:
    """As _write_clip, but a failing clip (a codec or espeak-ng error) is reported, not fatal."""
    try:
        return _write_clip(gen, out, index, pcm16)
    except (ValueError, RuntimeError, OSError) as e:
        return {"path": f"audio/{index:06d}.wav", "mos": "", "error": f"{type(e).__name__}: {e}"}


def _work(args: tuple[str, int, bool]) -> dict[str, object]:
    assert _WORKER is not None
    out, index, pcm16 = args
    return _safe_clip(_WORKER, Path(out), index, pcm16)


# ----------------------------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class Summary:
    clips: int
    made: int
    skipped: int
    wall_s: float
    manifest: Path


def _check_config(out: Path, cfg: SimulateConfig) -> None:
    """Save the config in ``out``; refuse to continue a corpus made with a different one (``clips`` may
    differ: growing or shrinking a corpus keeps the clips it shares)."""
    saved = out / "simulate.yaml"
    if saved.exists():
        old = to_dict(from_dict(SimulateConfig, load_yaml(saved)))
        new = to_dict(cfg)
        old.pop("clips")
        new.pop("clips")
        if old != new:
            raise ConfigError(
                f"{out} holds a corpus made with a different config ({saved}); "
                "use a new output folder or the same config"
            )
    saved.write_text(dump_yaml(cfg))


class Progress:
    """A progress bar on a terminal; plain periodic lines (every ``every`` clips or ``seconds``)
    otherwise, so that logs of a long run stay readable."""

    def __init__(
        self,
        total: int,
        log: Callable[[str], None],
        tty: bool | None = None,
        every: int = 25,
        seconds: float = 60.0,
    ) -> None:
        self.total, self.log, self.every, self.seconds = total, log, every, seconds
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.t0 = self.last = time.monotonic()
        self.done = 0

    def line(self, note: str = "") -> str:
        el = time.monotonic() - self.t0
        rate = self.done / el if el > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        pct = 100.0 * self.done / max(self.total, 1)
        bar = "#" * int(pct / 5) + "." * (20 - int(pct / 5))
        eta_s = f"{eta:.0f} s" if eta == eta else "?"
        return (
            f"  [{bar}] {self.done}/{self.total} clips ({pct:.0f} %), {el:.0f} s elapsed, "
            f"{rate * 60:.1f} clips/min, ETA {eta_s}{note}"
        )

    def step(self, note: str = "") -> None:
        self.done += 1
        now = time.monotonic()
        if self.tty:
            print(
                "\r" + self.line(note),
                end="\n" if self.done == self.total else "",
                file=sys.stderr,
                flush=True,
            )
        elif self.done % self.every == 0 or self.done == self.total or now - self.last >= self.seconds:
            self.log(self.line(note))
            self.last = now


def simulate(
    cfg: SimulateConfig,
    out: str | Path,
    workers: int = 1,
    log: Callable[[str], None] | None = None,
    labeller: Labeller | None = None,
    tty: bool | None = None,
) -> Summary:
    """Generate (or finish) the corpus in ``out``; returns counts and the manifest path.

    ``labeller`` overrides the configured one (single-process only; used by tests). Teacher scores
    are cached by clip content in ``out/cache/teacher``. ``tty``: draw a progress bar (default: when
    stderr is a terminal) instead of periodic log lines.
    """
    log = log or (lambda s: print(s, file=sys.stderr, flush=True))
    out = Path(out)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    catalog = Catalog.build(cfg.sources)  # fail early, with a clear message, on a missing source folder
    if cfg.degrade.noise_dir is not None and "recorded" in cfg.degrade.noise_types:
        load_noise_bank(cfg.degrade.noise_dir)  # and on a missing noise folder
    (out / "audio").mkdir(parents=True, exist_ok=True)
    (out / "meta").mkdir(exist_ok=True)
    _check_config(out, cfg)
    todo = [i for i in range(cfg.clips) if not (out / "meta" / f"{i:06d}.json").exists()]
    skipped = cfg.clips - len(todo)
    log(
        f"simulate: {cfg.clips} clips in {out} ({skipped} already done, {len(todo)} to make, "
        f"{workers} worker(s))"
    )
    t0 = time.monotonic()
    cpu0 = _cpu_s()
    failed: list[str] = []
    bar = Progress(len(todo), log, tty)
    cache_dir = out / "cache" / "teacher"

    def progress(rows: Iterable[dict[str, object]]) -> None:
        for k, row in enumerate(rows, 1):
            if "error" in row:
                failed.append(str(row["path"]))
                log(f"  clip {row['path']} failed (skipped): {row['error']}")
            if k % MANIFEST_EVERY == 0:  # a partial corpus is usable while the rest is made
                write_manifest(out, cfg.clips)
            bar.step(f" (last: {row['path']} mos {row['mos']})")

    if todo and (workers == 1 or labeller is not None):
        gen = ClipMaker(cfg, labeller, catalog, cache_dir)
        progress(_safe_clip(gen, out, i, cfg.pcm16) for i in todo)
    elif todo:
        with ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(to_dict(cfg), str(cache_dir))
        ) as pool:
            progress(pool.map(_work, [(str(out), i, cfg.pcm16) for i in todo], chunksize=2))
    manifest = write_manifest(out, cfg.clips)
    summary = summarise(manifest)
    wall = time.monotonic() - t0
    summary["wall_s"] = round(wall, 1)
    summary["cpu_s"] = round(_cpu_s() - cpu0, 1)
    if todo:
        summary["cpu_s_per_clip"] = round((_cpu_s() - cpu0) / len(todo), 3)
    summary["made"] = len(todo) - len(failed)
    summary["failed"] = failed
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(format_summary(summary))
    return Summary(cfg.clips, len(todo), skipped, wall, manifest)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the workers), user + system."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def write_manifest(out: Path, clips: int) -> Path:
    """Collect ``meta/*.json`` of clips 0..clips-1 into ``manifest.csv`` (atomically)."""
    rows = []
    for i in range(clips):
        meta = out / "meta" / f"{i:06d}.json"
        if meta.exists():
            rows.append(json.loads(meta.read_text()))
    path = out / "manifest.csv"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


# ----------------------------------------------------------------------------------------- summary
def read_rows(manifest: str | Path) -> list[dict[str, str]]:
    p = Path(manifest)
    if not p.is_file():
        raise ManifestError(f"{p}: no such manifest")
    with p.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path", "mos"} <= set(reader.fieldnames):
            raise ManifestError(f"{p}: a manifest needs the columns path and mos (has: {reader.fieldnames})")
        return list(reader)


def summarise(manifest: str | Path) -> dict[str, object]:
    """Counts, label statistics and histogram, missing files, per-split/source/degradation counts."""
    p = Path(manifest)
    rows = read_rows(p)
    try:
        mos = np.array([float(r["mos"]) for r in rows], dtype=np.float64)
    except ValueError as e:
        raise ManifestError(f"{p}: non-numeric mos ({e})") from None
    missing = sum(1 for r in rows if not (p.parent / r["path"]).exists())
    edges = np.arange(1.0, 5.01, 0.5)
    hist, _ = np.histogram(np.clip(mos, 1, 5), edges)
    out: dict[str, object] = {
        "rows": len(rows),
        "missing_files": missing,
        "mos_mean": round(float(mos.mean()), 3) if len(mos) else None,
        "mos_std": round(float(mos.std()), 3) if len(mos) else None,
        "mos_min": round(float(mos.min()), 3) if len(mos) else None,
        "mos_max": round(float(mos.max()), 3) if len(mos) else None,
        "mos_histogram": {f"{a:.1f}-{a + 0.5:.1f}": int(h) for a, h in zip(edges[:-1], hist, strict=True)},
    }
    if rows and "seconds" in rows[0]:
        out["hours"] = round(sum(float(r["seconds"] or 0) for r in rows) / 3600, 3)
    if rows and "degradations" in rows[0]:
        stages: dict[str, list[float]] = {}
        for r, m in zip(rows, mos, strict=True):
            for name in (r["degradations"] or "clean").split("+"):
                stages.setdefault(name, []).append(float(m))
        out["by_stage"] = {k: len(v) for k, v in sorted(stages.items(), key=lambda kv: -len(kv[1]))}
        out["mos_by_stage"] = {k: round(float(np.mean(v)), 3) for k, v in stages.items()}
    for col in SUMMARY_COLUMNS:
        if rows and col in rows[0]:
            out[f"by_{col}"] = dict(Counter(r[col] or "-" for r in rows).most_common(12))
    return out


def format_summary(s: dict[str, object]) -> str:
    lines = [
        f"rows {s['rows']}, missing files {s['missing_files']}"
        + (f", {s['hours']} h" if "hours" in s else "")
        + (f", wall {s['wall_s']} s" if "wall_s" in s else ""),
        f"mos mean {s['mos_mean']} std {s['mos_std']} min {s['mos_min']} max {s['mos_max']}",
    ]
    hist = s["mos_histogram"]
    assert isinstance(hist, dict)
    top = max(hist.values()) or 1
    lines += [f"  {k}: {v:5d} {'#' * round(40 * v / top)}" for k, v in hist.items()]
    for k, v in s.items():
        if k.startswith("by_") and isinstance(v, dict):
            lines.append(f"{k[3:]}: " + ", ".join(f"{a} {b}" for a, b in v.items()))
    stage_mos = s.get("mos_by_stage")
    if isinstance(stage_mos, dict):
        lines.append("mean label by stage: " + ", ".join(f"{a} {b}" for a, b in stage_mos.items()))
    if "cpu_s_per_clip" in s:
        lines.append(f"cpu {s['cpu_s']} s in all, {s['cpu_s_per_clip']} CPU-s per new clip")
    return "\n".join(lines)
