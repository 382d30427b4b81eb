"""Torch-free scoring runtime: onnxruntime session, providers, model metadata, windowed scoring.

Needs only numpy, onnxruntime (or onnxruntime-gpu) and soxr; never imports torch.
"""

from samos.runtime.modelinfo import Calibration, ModelFileError, ModelInfo
from samos.runtime.providers import ProviderUnavailableError
from samos.runtime.scorer import DEFAULT_MODEL, DefaultModelMissingError, ScoreBatch, Scorer
from samos.runtime.windows import FileScore, WindowScore, score_many, score_waveform

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
