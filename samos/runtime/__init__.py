"""Torch-free scoring runtime: onnxruntime session, providers, model metadata, windowed scoring.

Needs only numpy, onnxruntime (or onnxruntime-gpu) and soxr; never imports torch.
"""

from typing import Any

from samos.runtime.modelinfo import Calibration, ModelFileError, ModelInfo
from samos.runtime.providers import ProviderUnavailableError
from samos.runtime.scorer import DEFAULT_MODEL, DefaultModelMissingError, ScoreBatch, Scorer

_WINDOWS = ("FileScore", "WindowScore", "score_many", "score_waveform")


def __getattr__(name: str) -> Any:
    # samos.runtime.windows runs audio through the monitor's StreamProcessor, which imports
    # samos.runtime.vad: importing it lazily keeps ``import samos.monitor...`` free of a cycle.
    if name in _WINDOWS:
        from samos.runtime import windows

        return getattr(windows, name)
    raise AttributeError(f"module 'samos.runtime' has no attribute {name!r}")


__all__ = [
    "DEFAULT_MODEL",
    "Calibration",
    "DefaultModelMissingError",
    "FileScore",
    "ModelFileError",
    "ModelInfo",
    "ProviderUnavailableError",
    "ScoreBatch",
    "Scorer",
    "WindowScore",
    "score_many",
    "score_waveform",
]
