"""Out-of-domain sets for ``samos bench accuracy``: human-rated audio that no samos model trains on.

``vmc24t3`` (VoiceMOS Challenge 2024 track 3, see its README): 280 speech-enhancement outputs at
16 kHz with P.835-style overall (OVR) ratings; evaluation only. Its default place is
``../shared/data/vmc24t3`` next to the repository (``$SAMOS_VMC24T3`` overrides it). Torch-free.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_VMC24T3 = REPO.parent / "shared" / "data" / "vmc24t3"
VMC24T3 = "vmc24t3"


class OodError(ValueError):
    """An out-of-domain set that is missing or malformed."""


@dataclass(frozen=True)
class OodClip:
    """One rated clip of an out-of-domain set (``path`` absolute; ``label``: overall MOS)."""

    path: Path
    label: float
    system: str
    talker: str


def default_vmc24t3() -> Path:
    """``$SAMOS_VMC24T3`` or ``../shared/data/vmc24t3`` relative to the repository."""
    return Path(os.environ.get("SAMOS_VMC24T3") or DEFAULT_VMC24T3)


def load_vmc24t3(root: str | Path) -> list[OodClip]:
    """The clips of ``root/vmc24t3.csv`` (``path,mos,...,system,talker``); OodError when absent or broken."""
    root = Path(root)
    csv_path = root / "vmc24t3.csv"
    if not csv_path.is_file():
        raise OodError(f"{root}: no vmc24t3.csv (the VoiceMOS 2024 track 3 set; see its README)")
    clips: list[OodClip] = []
    with open(csv_path, newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            try:
                path, label = root / row["path"], float(row["mos"])
            except KeyError as e:
                raise OodError(f"{csv_path}: no column {e}") from None
            except (TypeError, ValueError):
                raise OodError(f"{csv_path} row {i + 2}: mos is not a number") from None
            if not path.is_file():
                raise OodError(f"{path}: listed in vmc24t3.csv but missing")
            clips.append(OodClip(path, label, row.get("system", ""), row.get("talker", "")))
    if not clips:
        raise OodError(f"{csv_path}: no clips")
    return clips
