"""torch -> ONNX export of the SAMOS model, fp16 conversion and ONNX/torch parity checks (needs torch)."""

from samos.export.onnx_export import (
    ExportError,
    ExportSettings,
    export_onnx,
    save_fp16,
    to_fp16,
    weights_sha256,
)
from samos.export.verify import ParityReport, verify_onnx

__all__ = [
    "ExportError",
    "ExportSettings",
    "ParityReport",
    "export_onnx",
    "save_fp16",
    "to_fp16",
    "verify_onnx",
    "weights_sha256",
]
