"""Distillation labels: a manifest's clips scored by a model, written as a new manifest.

``relabel(manifest, scorer, out)`` scores every clip as ``samos score`` does (the monitor's 4 s
windows every 1 s, gated by its voice activity check; a clip's label is the mean of its scored
windows) and writes a generic manifest whose ``mos`` is the model's score. Every other column of the
input rows is kept; ``mos_before`` holds the label the row had, ``label_model`` the model's name and
version. Clips the model cannot score (unreadable, too short, no speech) are left out and counted;
nothing else stops the run. Torch-free.

This is how the compact student learns from the default model: ``samos data relabel`` on the call
corpus, then a joint training step on that manifest and the human P.835 ratings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samos.audio import AudioError, load_audio
from samos.data.manifest import Item, Manifest, SkipReport, write_manifest
from samos.runtime.scorer import Scorer
from samos.runtime.windows import FileScore, score_many

BEFORE_COLUMN = "mos_before"
MODEL_COLUMN = "label_model"
_FIXED = ("path", "mos", "std", "sr", "condition")


@dataclass(frozen=True)
class RelabelResult:
    """What :func:`relabel` wrote: ``kept`` rows in ``out``; ``skipped`` counts rows left out by reason."""

    out: Path
    kept: int
    skipped: SkipReport


def _audio(items: list[Item]) -> Iterator[tuple[Any, int] | AudioError]:
    for it in items:
        try:
            yield load_audio(it.path)
        except AudioError as e:
            yield e
        except Exception as e:  # noqa: BLE001 - any decoder failure is this clip's skip reason
            yield AudioError(f"{it.path}: cannot decode ({type(e).__name__}: {e})")


def relabel(
    manifest: Manifest,
    scorer: Scorer,
    out: str | Path,
    *,
    batch_size: int = 16,
    on_clip: Callable[[], None] | None = None,
) -> RelabelResult:
    """Score every clip of ``manifest`` with ``scorer`` and write the relabelled manifest to ``out``."""
    items = list(manifest)
    tag = f"{scorer.path.name}@{scorer.info.version}"
    report = SkipReport()
    kept: list[Item] = []
    for item, result in zip(items, score_many(scorer, _audio(items), batch_size=batch_size), strict=True):
        if on_clip is not None:
            on_clip()
        if isinstance(result, AudioError):
            report.add("unscorable", str(item.path), str(result))
            continue
        assert isinstance(result, FileScore)
        if result.mos is None:
            report.add("no_scored_window", str(item.path), f"windows: {result.statuses()}")
            continue
        fields = {**item.fields, BEFORE_COLUMN: f"{item.mos:.6g}", MODEL_COLUMN: tag}
        kept.append(dataclasses.replace(item, mos=result.mos, std=None, fields=fields))
    extra = [c for c in (items[0].fields if items else {}) if c.lower() not in _FIXED]
    extra = [c for c in extra if c not in (BEFORE_COLUMN, MODEL_COLUMN)] + [BEFORE_COLUMN, MODEL_COLUMN]
    return RelabelResult(write_manifest(out, kept, extra=extra), len(kept), report)
