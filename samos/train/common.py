"""Names the training modules share: the run error, the log callable, the single-process default."""

from __future__ import annotations

from collections.abc import Callable

from samos.train.distributed import Dist


class TrainingError(ValueError):
    """A run that cannot start or continue (no usable data, bad resume state, ...)."""


Log = Callable[[str], None]
SINGLE = Dist()
"""The single-process default (no torchrun)."""
