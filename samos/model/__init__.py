"""The SA-SSL-MOS model in torch: front end, SSL encoders, heads, the model, checkpoints.

Importing this package imports torch; the runtime and the monitor never do.
"""

from samos.model.checkpoint import CheckpointError, load_checkpoint, read_checkpoint, save_checkpoint
from samos.model.frontend import DFTConv, LogSpectrogram
from samos.model.heads import GaussianHead, SpectrogramEncoder, SSLLayerHead
from samos.model.samos_model import SAMOS, ModelInputError
from samos.model.ssl import (
    DistillMOSEncoder,
    SSLEncoder,
    SSLWeightsError,
    Wav2Vec2Encoder,
    build_ssl_encoder,
    bundle_weights_path,
)

__all__ = [
    "SAMOS",
    "CheckpointError",
    "DFTConv",
    "DistillMOSEncoder",
    "GaussianHead",
    "LogSpectrogram",
    "ModelInputError",
    "SSLEncoder",
    "SSLLayerHead",
    "SSLWeightsError",
    "SpectrogramEncoder",
    "Wav2Vec2Encoder",
    "build_ssl_encoder",
    "bundle_weights_path",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
]
