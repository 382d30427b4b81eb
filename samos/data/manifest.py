"""Rated-audio manifests: one reader per corpus layout, one ``Manifest`` type, one skip report.

Readers (``format``):

- ``generic``: a CSV with a header holding a path column (``path``, ``file``, ``filepath``,
  ``filename``, ``wav``) and a label column (``mos``, ``score``, ``rating``); optional ``sr``,
  ``std`` / ``mos_std``, ``condition`` / ``con``, ``db`` columns. Paths are relative to ``root``.
- ``nisqa``: the NISQA corpus CSVs (``NISQA_TRAIN_SIM_file.csv`` ...: ``db``, ``con``,
  ``filepath_deg``, ``mos``, ``mos_std``); ``filepath_deg`` is relative to the corpus folder.
- ``audiomos``: AudioMOS 2025 track 3 as the organisers ship it: per-listener ratings
  ``uttID,lisID,rating`` (``DATA/utt_16k.csv`` ...; averaged per utterance), ``sysID,uttID,rating``
  tables, or header-less ``name,score`` lists; audio in ``DATA/wav/<uttID>``.
- ``tencent``: ConferencingSpeech 2022 Tencent corpus CSVs (``deg_wav``, ``mos``).
- ``auto``: sniffs the header and picks one of the above.

Bad rows never stop a run: they land in a ``SkipReport`` (counts by reason, first few paths).
``validate`` adds a cheap header check of every file (soundfile, else PyAV) before training starts.
Torch-free.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from samos.audio import MAX_RATE, MIN_RATE

ManifestFormat = Literal["auto", "generic", "nisqa", "audiomos", "tencent"]
FORMATS: tuple[str, ...] = ("generic", "nisqa", "audiomos", "tencent")

PATH_COLUMNS = ("path", "filepath", "file", "filename", "wav", "filepath_deg", "deg_wav", "deg")
MOS_COLUMNS = ("mos", "score", "rating", "label")
STD_COLUMNS = ("std", "mos_std")
CONDITION_COLUMNS = ("condition", "con", "sysid", "system")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus")


class ManifestError(ValueError):
    """A manifest that cannot be read at all (missing file, no usable columns, unknown format)."""


@dataclass(frozen=True)
class Item:
    """One rated clip.

    ``mos``: label in MOS units; ``std``: rating standard deviation when known; ``sr``: sample rate
    in Hz (declared, or read from the file header by ``validate``); ``seconds``: duration once
    validated; ``fields``: the raw CSV row (for ``--group COLUMN``).
    """

    path: Path
    mos: float
    std: float | None = None
    sr: int | None = None
    seconds: float | None = None
    condition: str | None = None
    db: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def id(self) -> str:
        return str(self.path)


@dataclass
class SkipReport:
    """Counts of skipped items by reason, with the first few examples of each."""

    max_examples: int = 3
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str, detail: str = "") -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < self.max_examples:
            ex.append(f"{where}: {detail}" if detail else where)

    def merge(self, other: SkipReport) -> None:
        for reason, n in other.counts.items():
            self.counts[reason] += n
            ex = self.examples.setdefault(reason, [])
            for e in other.examples.get(reason, []):
                if len(ex) < self.max_examples:
                    ex.append(e)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __bool__(self) -> bool:
        return self.total > 0

    def summary(self, of: int | None = None) -> str:
        """One line per reason, e.g. ``missing_file: 2 (a.wav: no such file, ...)``."""
        if not self.total:
            return "skipped nothing"
        head = f"skipped {self.total}" + (f" of {of}" if of is not None else "") + " item(s)"
        lines = [head]
        for reason, n in self.counts.most_common():
            ex = "; ".join(self.examples.get(reason, []))
            more = ", ..." if n > len(self.examples.get(reason, [])) else ""
            lines.append(f"  {reason}: {n} ({ex}{more})")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {"total": self.total, "counts": dict(self.counts), "examples": dict(self.examples)}


@dataclass
class Manifest:
    """Readable items plus the report of what was skipped and why."""

    items: list[Item]
    skipped: SkipReport = field(default_factory=SkipReport)
    source: str = ""
    group_sizes: list[int] | None = None
    """Items per source manifest, in order, when the parts must stay apart (training ``data.mix``)."""

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    @staticmethod
    def concat(parts: Iterable[Manifest]) -> Manifest:
        out = Manifest([], SkipReport(), "")
        sources = []
        for p in parts:
            out.items.extend(p.items)
            out.skipped.merge(p.skipped)
            sources.append(p.source)
        out.source = "+".join(s for s in sources if s)
        return out


# --------------------------------------------------------------------------------------- helpers
def _read_rows(path: Path) -> tuple[list[str] | None, list[list[str]]]:
    """(header or None when the first row has a numeric last field, data rows)."""
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read ({e})") from None
    sample = text[:4096]
    delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not rows:
        raise ManifestError(f"{path}: empty manifest")
    first = [c.strip() for c in rows[0]]
    if len(first) >= 2 and _is_number(first[-1]):
        return None, rows
    return first, rows[1:]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _col(header: list[str], names: Iterable[str]) -> int | None:
    lower = [h.lower() for h in header]
    for n in names:
        if n.lower() in lower:
            return lower.index(n.lower())
    return None


def _float(s: str | None) -> float:
    if s is None or not s.strip():
        return math.nan
    try:
        return float(s)
    except ValueError:
        return math.nan


def _opt_float(s: str | None) -> float | None:
    v = _float(s)
    return None if math.isnan(v) else v


def _opt_int(s: str | None) -> int | None:
    v = _float(s)
    return None if math.isnan(v) else int(v)


def _first_existing(candidates: list[Path]) -> Path:
    for c in candidates:
        if c.is_file():
            return c
    return candidates[0]


def _with_suffix_candidates(base: Path, name: str) -> list[Path]:
    p = base / name
    if Path(name).suffix.lower() in AUDIO_SUFFIXES:
        return [p]
    return [p.with_name(p.name + ".wav"), p]


def _label_ok(raw: str | None, mos: float, where: str, report: SkipReport, path: Path) -> bool:
    if not math.isfinite(mos):
        report.add("bad_label", f"{where} ({path.name})", f"label {raw or ''!r} is not a number")
        return False
    return True


# --------------------------------------------------------------------------------------- readers
def read_generic(csv_path: Path, root: Path | None = None) -> Manifest:
    header, rows = _read_rows(csv_path)
    if header is None:
        header = ["path", "mos"] + [f"col{i}" for i in range(2, len(rows[0]))]
    ip, im = _col(header, PATH_COLUMNS), _col(header, MOS_COLUMNS)
    if ip is None or im is None:
        raise ManifestError(
            f"{csv_path}: needs a path column ({', '.join(PATH_COLUMNS)}) and a label column "
            f"({', '.join(MOS_COLUMNS)}); found {header}"
        )
    istd, isr = _col(header, STD_COLUMNS), _col(header, ("sr", "rate", "sample_rate"))
    icon, idb = _col(header, CONDITION_COLUMNS), _col(header, ("db",))
    base = root if root is not None else csv_path.parent
    report = SkipReport()
    items: list[Item] = []
    for n, r in enumerate(rows, start=2 if header else 1):
        row = dict(zip(header, (c.strip() for c in r), strict=False))
        where = f"{csv_path.name}:{n}"
        if len(r) <= max(ip, im) or not r[ip].strip():
            report.add("bad_row", where, "missing path or label field")
            continue
        path = base / r[ip].strip()
        mos = _float(r[im])
        if not _label_ok(r[im], mos, where, report, path):
            continue
        items.append(
            Item(
                path=path,
                mos=mos,
                std=_opt_float(row.get(header[istd])) if istd is not None else None,
                sr=_opt_int(row.get(header[isr])) if isr is not None else None,
                condition=(row.get(header[icon]) or None) if icon is not None else None,
                db=(row.get(header[idb]) or None) if idb is not None else None,
                fields=row,
            )
        )
    return Manifest(items, report, str(csv_path))


def read_nisqa(csv_path: Path, root: Path | None = None) -> Manifest:
    """NISQA corpus CSV; ``root`` defaults to the corpus folder (the parent of ``NISQA_*/``)."""
    header, rows = _read_rows(csv_path)
    if header is None or _col(header, ("mos",)) is None:
        raise ManifestError(
            f"{csv_path}: not a NISQA corpus CSV (needs db, filepath_deg or filename_deg, mos)"
        )
    ifp, ifn, idb = _col(header, ("filepath_deg",)), _col(header, ("filename_deg",)), _col(header, ("db",))
    if ifp is None and (ifn is None or idb is None):
        raise ManifestError(f"{csv_path}: a NISQA CSV needs filepath_deg, or db and filename_deg")
    im = _col(header, ("mos",))
    assert im is not None
    istd, icon = _col(header, ("mos_std",)), _col(header, ("con",))
    report = SkipReport()
    items: list[Item] = []
    for n, r in enumerate(rows, start=2):
        row = dict(zip(header, (c.strip() for c in r), strict=False))
        where = f"{csv_path.name}:{n}"
        db = row.get(header[idb]) if idb is not None else None
        rel = row.get(header[ifp]) if ifp is not None else None
        if not rel and db and ifn is not None and row.get(header[ifn]):
            rel = f"{db}/deg/{row[header[ifn]]}"
        if not rel:
            report.add("bad_row", where, "no degraded-file path")
            continue
        if root is not None:
            path = root / rel
        else:
            path = _first_existing([csv_path.parent.parent / rel, csv_path.parent / rel])
        mos = _float(row.get(header[im]))
        if not _label_ok(row.get(header[im]), mos, where, report, path):
            continue
        con = row.get(header[icon]) if icon is not None else None
        items.append(
            Item(
                path=path,
                mos=mos,
                std=_opt_float(row.get(header[istd])) if istd is not None else None,
                condition=f"{db}/{con}" if con and db else (con or db or None),
                db=db or None,
                fields=row,
            )
        )
    return Manifest(items, report, str(csv_path))


_UTT_SUFFIX = re.compile(r"[-_]utt[^-_/]*$")


def audiomos_condition(utt_id: str) -> str:
    """The system/condition of an AudioMOS utterance id (``...16k_sys1_utt31`` -> ``...16k_sys1``)."""
    stem = Path(utt_id).name
    for suffix in AUDIO_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return _UTT_SUFFIX.sub("", stem)


def read_audiomos(csv_path: Path, root: Path | None = None) -> Manifest:
    """AudioMOS 2025 track 3 rating files; per-listener rows are averaged into one MOS per clip."""
    header, rows = _read_rows(csv_path)
    base = root if root is not None else csv_path.parent
    if header is None:
        header = ["uttID", "rating"]
    iu, ir = _col(header, ("uttid", "wav_id", "wav", "name")), _col(header, ("rating", "mos", "score"))
    isys = _col(header, ("sysid",))
    if iu is None or ir is None:
        raise ManifestError(f"{csv_path}: an AudioMOS list needs uttID and rating columns; found {header}")
    report = SkipReport()
    ratings: dict[str, list[float]] = {}
    first_row: dict[str, dict[str, str]] = {}
    for n, r in enumerate(rows, start=2):
        if len(r) <= max(iu, ir) or not r[iu].strip():
            report.add("bad_row", f"{csv_path.name}:{n}", "missing uttID or rating")
            continue
        utt = r[iu].strip()
        first_row.setdefault(utt, dict(zip(header, (c.strip() for c in r), strict=False)))
        ratings.setdefault(utt, []).append(_float(r[ir]))
    items: list[Item] = []
    for utt, vals in ratings.items():
        path = _first_existing(
            _with_suffix_candidates(base / "wav", utt)
            + _with_suffix_candidates(base, utt)
            + _with_suffix_candidates(base / "DATA" / "wav", utt)
        )
        good = [v for v in vals if math.isfinite(v)]
        if not good:
            report.add("bad_label", f"{csv_path.name} ({utt})", "no numeric rating")
            continue
        mos = sum(good) / len(good)
        std = (sum((v - mos) ** 2 for v in good) / (len(good) - 1)) ** 0.5 if len(good) > 1 else None
        row = first_row[utt]
        row["n_votes"] = str(len(good))
        cond = row.get(header[isys]) if isys is not None else None
        items.append(Item(path=path, mos=mos, std=std, condition=cond or audiomos_condition(utt), fields=row))
    return Manifest(items, report, str(csv_path))


def read_tencent(csv_path: Path, root: Path | None = None) -> Manifest:
    """ConferencingSpeech 2022 Tencent corpus CSV (``deg_wav``, ``mos``)."""
    header, rows = _read_rows(csv_path)
    if header is None or _col(header, ("deg_wav",)) is None or _col(header, ("mos",)) is None:
        raise ManifestError(f"{csv_path}: a Tencent corpus CSV needs deg_wav and mos columns")
    ip, im = _col(header, ("deg_wav",)), _col(header, ("mos",))
    assert ip is not None and im is not None
    base = root if root is not None else csv_path.parent
    # withReverberationTrainDevMOS.csv -> audio in withReverberationTrainDev/
    sibling = base / re.sub(r"_?MOS$", "", csv_path.stem, flags=re.IGNORECASE)
    report = SkipReport()
    items: list[Item] = []
    for n, r in enumerate(rows, start=2):
        row = dict(zip(header, (c.strip() for c in r), strict=False))
        rel = row.get(header[ip], "")
        if not rel:
            report.add("bad_row", f"{csv_path.name}:{n}", "empty deg_wav")
            continue
        name = Path(rel.replace("\\", "/")).name
        path = _first_existing([base / rel, base / name, sibling / name])
        mos = _float(row.get(header[im]))
        if not _label_ok(row.get(header[im]), mos, f"{csv_path.name}:{n}", report, path):
            continue
        items.append(Item(path=path, mos=mos, fields=row))
    return Manifest(items, report, str(csv_path))


READERS = {"generic": read_generic, "nisqa": read_nisqa, "audiomos": read_audiomos, "tencent": read_tencent}


def sniff_format(csv_path: Path) -> str:
    """Pick a reader from the header (see the module docstring)."""
    header, rows = _read_rows(csv_path)
    if header is None:
        return "audiomos" if len(rows[0]) == 2 else "generic"
    low = {h.lower() for h in header}
    if "filepath_deg" in low or {"db", "filename_deg"} <= low:
        return "nisqa"
    if "deg_wav" in low:
        return "tencent"
    if "uttid" in low:
        return "audiomos"
    if _col(header, PATH_COLUMNS) is not None and _col(header, MOS_COLUMNS) is not None:
        return "generic"
    raise ManifestError(
        f"{csv_path}: cannot tell the manifest format from its header {header}; "
        f"give format: one of {', '.join(FORMATS)}"
    )


def read_manifest(csv_path: str | Path, root: str | Path | None = None, format: str = "auto") -> Manifest:
    """Read one rated manifest. Bad rows are skipped into ``Manifest.skipped``, never raised."""
    p = Path(csv_path).expanduser()
    fmt = sniff_format(p) if format == "auto" else format
    if fmt not in READERS:
        raise ManifestError(f"unknown manifest format {format!r}; use auto or one of {', '.join(FORMATS)}")
    return READERS[fmt](p, Path(root).expanduser() if root is not None else None)


def read_manifests(
    csv_paths: Iterable[str | Path], root: str | Path | None = None, format: str = "auto"
) -> Manifest:
    return Manifest.concat(read_manifest(p, root, format) for p in csv_paths)


# ------------------------------------------------------------------------------------ validation
@dataclass(frozen=True)
class AudioInfo:
    sr: int
    frames: int
    channels: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sr


def probe_audio(path: Path) -> AudioInfo:
    """Read only the header of an audio file (soundfile, else PyAV). Raises ValueError if unreadable."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        return AudioInfo(int(info.samplerate), int(info.frames), int(info.channels))
    except Exception as sf_error:  # noqa: BLE001 - fall back to PyAV for compressed formats
        try:
            import av

            with av.open(str(path)) as container:
                streams = list(container.streams.audio)
                if not streams:
                    raise ValueError("no audio stream") from None
                s = streams[0]
                ctx = s.codec_context
                sr = int(getattr(ctx, "sample_rate", 0) or getattr(s, "rate", 0) or 0)
                dur = float(s.duration * s.time_base) if s.duration and s.time_base else None
                if dur is None and container.duration:
                    dur = container.duration / 1_000_000
                if not sr or not dur:
                    raise ValueError("no rate or duration in the header")
                return AudioInfo(sr, int(round(dur * sr)), int(getattr(ctx, "channels", 1) or 1))
        except Exception as av_error:  # noqa: BLE001
            raise ValueError(f"not a readable audio file ({sf_error}; {av_error})") from None


def validate(manifest: Manifest, probe: bool = True) -> Manifest:
    """Drop items whose file is missing, unreadable, empty or at an unsupported rate.

    ``probe``: read each file's header (cheap); when false only existence is checked.
    Returns a new manifest; its ``skipped`` report holds the earlier and the new skips.
    """
    report = SkipReport()
    report.merge(manifest.skipped)
    kept: list[Item] = []
    for item in manifest.items:
        p = item.path
        if not p.is_file():
            report.add("missing_file", str(p), "no such file")
            continue
        if p.stat().st_size == 0:
            report.add("empty_file", str(p), "0 bytes")
            continue
        if not probe:
            kept.append(item)
            continue
        try:
            info = probe_audio(p)
        except ValueError as e:
            report.add("unreadable", str(p), str(e)[:160])
            continue
        if info.frames <= 0:
            report.add("empty_audio", str(p), "no samples")
            continue
        if not MIN_RATE <= info.sr <= MAX_RATE:
            report.add("bad_rate", str(p), f"{info.sr} Hz (supported {MIN_RATE}-{MAX_RATE})")
            continue
        kept.append(replace(item, sr=info.sr, seconds=info.seconds))
    return Manifest(kept, report, manifest.source)


def write_manifest(path: str | Path, items: Iterable[Item], extra: Iterable[str] = ()) -> Path:
    """Write a generic manifest (path relative to the CSV's folder when possible, else absolute: the
    readers take relative paths from the CSV's folder, not from the working directory)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cols = ["path", "mos", "std", "sr", "condition", *extra]
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for it in items:
            try:
                rel = str(it.path.resolve().relative_to(p.parent.resolve()))
            except ValueError:
                rel = str(it.path.absolute())
            w.writerow(
                [
                    rel,
                    f"{it.mos:.6g}",
                    "" if it.std is None else f"{it.std:.6g}",
                    it.sr or "",
                    it.condition or "",
                ]
                + [it.fields.get(c, "") for c in extra]
            )
    return p
