"""Self-describing SAMOS checkpoints: ``{format, config, state_dict, metadata, ssl}``.

A checkpoint rebuilds its model from the stored config alone (no training config, no CLI flags).

Frozen SSL encoder weights:

* ``distillmos``: not stored; they come from the installed distillmos package.
* a torchaudio ``bundle`` (no ``checkpoint``): not stored (XLS-R 2B up to layer 9 is 1.7 GB); the
  bundle name is enough and the weights are read from the torch hub cache when loading.
* anything else (a state-dict file, a Hugging Face folder, a random ``arch``): the truncated
  encoder's weights are stored, with its resolved architecture under ``ssl``, so the checkpoint
  loads without the original file or folder.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import zipfile
from pathlib import Path
from typing import Any

import torch

from samos import __version__
from samos.config import ConfigError, ModelConfig, from_dict, to_dict
from samos.model.samos_model import SAMOS
from samos.model.ssl import SSLWeightsError, distillmos_weights_path, encoder_from_description

FORMAT = "samos-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, unreadable or not a SAMOS checkpoint."""


def _ssl_stored(cfg: ModelConfig) -> bool:
    """Whether the SSL encoder's weights go into the checkpoint (see the module docstring)."""
    ssl = cfg.ssl
    if not ssl.enabled or ssl.family == "distillmos":
        return False
    return not (ssl.bundle and not ssl.checkpoint)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _plain(obj: Any, where: str) -> Any:
    """``obj`` as plain JSON-like types (what ``torch.load(weights_only=True)`` reads back)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if callable(getattr(obj, "item", None)) and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return _plain(obj.item(), where)
    raise CheckpointError(
        f"{where}: {type(obj).__name__} is not a plain value (use numbers, strings, lists, dicts)"
    )


def save_checkpoint(path: str | Path, model: SAMOS, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model`` to ``path`` (atomically: a temporary file then rename).

    ``metadata``: JSON-like training information (dataset, epoch, metrics, ...); ``samos_version``,
    ``created`` (UTC ISO 8601) and ``torch_version`` are added unless given.
    """
    path = Path(path)
    cfg = model.cfg
    stored = _ssl_stored(cfg)
    state = {
        k: v.detach().cpu().clone()
        for k, v in model.state_dict().items()
        if stored or not k.startswith("ssl.")
    }
    meta: dict[str, Any] = {
        "samos_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
        "host": platform.node(),
    }
    meta.update(_plain(metadata or {}, "metadata"))
    ssl_info: dict[str, Any] | None = None
    if model.ssl is not None:
        ssl_info = {
            "weights": "stored" if stored else ("package" if cfg.ssl.family == "distillmos" else "bundle")
        }
        if stored:
            ssl_info["encoder"] = model.ssl.describe()
        elif cfg.ssl.family == "distillmos":
            ssl_info["sha256"] = _sha256(distillmos_weights_path())
            ssl_info["package_version"] = importlib.metadata.version("distillmos")
    payload = {
        "format": FORMAT,
        "config": to_dict(cfg),
        "state_dict": state,
        "metadata": meta,
        "ssl": ssl_info,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, str(tmp))
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, validated (format, keys); tensors on CPU."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a folder, not a checkpoint file")
    if not zipfile.is_zipfile(p):  # torch.save writes a zip archive; anything else is not ours
        with open(p, "rb") as f:
            if f.read(4) == b"PK\x03\x04":
                raise CheckpointError(f"{p}: a damaged or truncated checkpoint (no zip directory)")
        onnx = p.suffix.lower() == ".onnx"
        hint = " (an ONNX model: give it to samos score / samos eval as --model)" if onnx else ""
        raise CheckpointError(
            f"{p}: not a samos checkpoint: not a torch checkpoint file{hint}; expected one written "
            "by `samos train` (final.pt, <step>/best.pt)"
        )
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise CheckpointError(f"{p}: not a samos checkpoint ({_why_unreadable(e)})") from None
    if not isinstance(obj, dict) or "format" not in obj:
        raise CheckpointError(f"{p}: not a SAMOS checkpoint (no 'format' key; is it a bare state dict?)")
    if obj["format"] != FORMAT:
        raise CheckpointError(
            f"{p}: checkpoint format {obj['format']!r} is not supported (expected {FORMAT!r})"
        )
    missing = [k for k in ("config", "state_dict", "metadata") if k not in obj]
    if missing:
        raise CheckpointError(f"{p}: checkpoint lacks {', '.join(missing)}")
    return obj


def _why_unreadable(e: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a torch zip file, in a few words.

    torch's own message for a pickle with arbitrary objects advises ``weights_only=False``; that runs
    whatever code the file holds, so it is never repeated here: samos checkpoints hold only tensors
    and plain data, and anything else is refused.
    """
    if "weights_only" in str(e) or "Unpickl" in type(e).__name__:
        return (
            "it holds Python objects besides tensors and plain data; samos reads only checkpoints "
            "written by `samos train` and never unpickles arbitrary objects"
        )
    first = " ".join(str(e).split()).split(". ")[0]
    return f"a damaged torch file: {type(e).__name__}: {first[:160]}"


def load_checkpoint(
    path: str | Path, *, map_location: str | torch.device = "cpu"
) -> tuple[SAMOS, dict[str, Any]]:
    """Rebuild the model from the checkpoint's own config and weights: ``(model in eval mode, metadata)``."""
    obj = read_checkpoint(path)
    try:
        cfg = from_dict(ModelConfig, obj["config"])
    except ConfigError as e:
        raise CheckpointError(f"{path}: stored config is invalid: {e}") from None
    ssl_info = obj.get("ssl") or {}
    try:
        if cfg.ssl.family == "distillmos" and ssl_info.get("sha256"):
            installed = distillmos_weights_path()
            if _sha256(installed) != ssl_info["sha256"]:
                raise CheckpointError(
                    f"{path}: was trained with other distillmos weights than the installed {installed} "
                    f"(sha256 differs); install distillmos=={ssl_info.get('package_version', '?')}"
                )
        encoder = None
        if cfg.ssl.enabled and ssl_info.get("weights") == "stored":
            encoder = encoder_from_description(ssl_info["encoder"], frozen=cfg.ssl.frozen)
        model = SAMOS(cfg, ssl_encoder=encoder)
    except SSLWeightsError as e:
        raise CheckpointError(f"{path}: cannot rebuild the SSL encoder: {e}") from None
    state = obj["state_dict"]
    result = model.load_state_dict(state, strict=False)
    ssl_from_source = cfg.ssl.enabled and ssl_info.get("weights") != "stored"
    missing = [k for k in result.missing_keys if not (ssl_from_source and k.startswith("ssl."))]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{path}: weights do not fit the stored config: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.to(map_location)
    model.eval()
    return model, dict(obj["metadata"])
