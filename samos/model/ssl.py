"""The frozen 16 kHz SSL branch: one intermediate layer of a pretrained speech encoder.

Two kinds of encoder, one interface (:class:`SSLEncoder`: ``.dim``, ``.layer``,
``forward(wave16 [B, T]) -> [B, frames, dim]``):

* :class:`Wav2Vec2Encoder`: a torchaudio wav2vec2-family model (wav2vec2, XLS-R 300M/1B/2B, HuBERT,
  WavLM) TRUNCATED after ``layer``: transformer layers above it are never built (and their weights
  never loaded), and the output is that layer's output, exactly what
  ``model.extract_features(x, num_layers=layer)[0][-1]`` gives for the full model.
  Weights come from a torchaudio bundle already in the torch hub cache, a torchaudio state-dict
  file, a Hugging Face model folder, or random initialisation from ``arch`` (tests). Nothing is
  ever downloaded.
* :class:`DistillMOSEncoder`: the CNN + transformer inside the PyPI package distillmos (weights ship
  with it), rebuilt so that any input length works and the graph exports to ONNX with a dynamic
  time axis. Output frames every 20 ms, 200 wide.

A frozen encoder (the default) has ``requires_grad=False`` everywhere and stays in eval mode even
when the parent module calls ``.train()``.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib.resources
import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samos.config import SSLConfig
from samos.model.frontend import DFTConv


class SSLWeightsError(ValueError):
    """SSL encoder weights that cannot be found or do not fit the requested architecture."""


# ------------------------------------------------------------------------------------------ base
class SSLEncoder(nn.Module, abc.ABC):
    """Base class: a (by default frozen) encoder of 16 kHz audio.

    ``forward(wave16 [B, T] float32 in [-1, 1]) -> [B, frames, dim]``.
    """

    dim: int
    layer: int
    frame_hop: int
    """16 kHz samples per output frame (320 = 20 ms for every encoder here)."""
    min_samples: int
    """Shortest input (16 kHz samples) that yields at least one frame."""

    def __init__(self, *, frozen: bool) -> None:
        super().__init__()
        self.frozen = frozen

    def freeze(self) -> None:
        """No gradients, eval mode (and kept there by :meth:`train`)."""
        self.frozen = True
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> SSLEncoder:
        # A frozen encoder keeps eval mode (dropout off, BatchNorm on running statistics).
        return super().train(False if self.frozen else mode)

    @abc.abstractmethod
    def num_frames(self, samples: int) -> int:
        """Output frames for an input of ``samples`` 16 kHz samples."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """What a checkpoint needs to rebuild this encoder's architecture without its weight source."""


# ------------------------------------------------------------------------------ wav2vec2 family
_ARCH_DEFAULTS: dict[str, Any] = {
    # torchaudio.models.wav2vec2_base's settings; ``arch`` overrides any of them.
    "extractor_mode": "group_norm",
    "extractor_conv_layer_config": None,
    "extractor_conv_bias": False,
    "encoder_embed_dim": 768,
    "encoder_projection_dropout": 0.0,
    "encoder_pos_conv_kernel": 128,
    "encoder_pos_conv_groups": 16,
    "encoder_num_layers": 12,
    "encoder_num_heads": 12,
    "encoder_attention_dropout": 0.0,
    "encoder_ff_interm_features": 3072,
    "encoder_ff_interm_dropout": 0.0,
    "encoder_dropout": 0.0,
    "encoder_layer_norm_first": False,
    "encoder_layer_drop": 0.0,
}
_WAVLM_DEFAULTS: dict[str, Any] = {"encoder_num_buckets": 320, "encoder_max_distance": 800}
_DEFAULT_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


@dataclasses.dataclass(frozen=True)
class Wav2Vec2Arch:
    """A resolved wav2vec2-family architecture: torchaudio factory kwargs + input normalisation."""

    model_type: str
    """"wav2vec2" (also HuBERT) or "wavlm"."""
    params: dict[str, Any]
    """Full keyword arguments of ``wav2vec2_model`` / ``wavlm_model`` (all layers, no aux head)."""
    normalize_waveform: bool
    """Zero-mean unit-variance per utterance before the CNN (XLS-R, large LV60K, ...)."""

    def to_dict(self) -> dict[str, Any]:
        params = dict(self.params)
        conv = params.get("extractor_conv_layer_config")
        if conv is not None:
            params["extractor_conv_layer_config"] = [list(c) for c in conv]
        return {
            "model_type": self.model_type,
            "params": params,
            "normalize_waveform": self.normalize_waveform,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Wav2Vec2Arch:
        try:
            return cls(
                model_type=str(d["model_type"]),
                params=_normalise_params(dict(d["params"]), str(d["model_type"])),
                normalize_waveform=bool(d["normalize_waveform"]),
            )
        except (KeyError, TypeError) as e:
            raise SSLWeightsError(f"malformed wav2vec2 architecture description: {e}") from None


def _normalise_params(params: dict[str, Any], model_type: str) -> dict[str, Any]:
    base = dict(_ARCH_DEFAULTS)
    if model_type == "wavlm":
        base.update(_WAVLM_DEFAULTS)
    params = {k: v for k, v in params.items() if k != "aux_num_out"}
    unknown = sorted(set(params) - set(base))
    if unknown:
        raise SSLWeightsError(
            f"ssl.arch: unknown key(s) {', '.join(unknown)} for a {model_type} model; "
            f"valid keys: {', '.join(sorted(base))}"
        )
    base.update(params)
    conv = base["extractor_conv_layer_config"]
    if conv is not None:
        base["extractor_conv_layer_config"] = [tuple(int(v) for v in c) for c in conv]
    return base


def _model_type_for(family: str) -> str:
    return "wavlm" if family == "wavlm" else "wav2vec2"


def _bundle(name: str) -> Any:
    import torchaudio.pipelines as pipelines

    bundle = getattr(pipelines, name, None)
    if bundle is None or not hasattr(bundle, "_params") or not hasattr(bundle, "_path"):
        names = sorted(n for n in dir(pipelines) if n.startswith(("WAV2VEC2", "HUBERT", "WAVLM")))
        raise SSLWeightsError(
            f"ssl.bundle: {name!r} is not a torchaudio wav2vec2-family bundle; try one of {names}"
        )
    return bundle


def _bundle_arch(name: str, family: str) -> Wav2Vec2Arch:
    bundle = _bundle(name)
    model_type = "wavlm" if bundle._model_type == "WavLM" else "wav2vec2"
    if model_type != _model_type_for(family):
        raise SSLWeightsError(
            f"ssl.bundle {name} is a {bundle._model_type} model but ssl.family is {family!r}"
        )
    return Wav2Vec2Arch(
        model_type, _normalise_params(dict(bundle._params), model_type), bool(bundle._normalize_waveform)
    )


def bundle_weights_path(name: str) -> Path:
    """Where torch hub caches the weights of torchaudio bundle ``name`` (it may not exist)."""
    bundle = _bundle(name)
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(str(bundle._path)).name


def _bundle_url(name: str) -> str:
    path = str(_bundle(name)._path)
    return path if path.startswith("https") else f"https://download.pytorch.org/torchaudio/models/{path}"


def _load_state_file(path: Path) -> dict[str, Tensor]:
    """A state dict from a .pt/.pth file (plain, or under "state_dict" / "model"), memory-mapped."""
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - older (non-zipfile) files cannot be memory-mapped
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise SSLWeightsError(f"{path}: not a readable torch state-dict file ({e})") from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise SSLWeightsError(f"{path}: does not hold a state dict of tensors")
    return obj


def _truncate_state(state: dict[str, Tensor], layer: int) -> dict[str, Tensor]:
    """Drop transformer layers >= ``layer`` (0-based) and any aux (CTC) head from a torchaudio state dict."""
    out: dict[str, Tensor] = {}
    prefix = "encoder.transformer.layers."
    for k, v in state.items():
        if k.startswith("aux."):
            continue
        if k.startswith(prefix) and int(k[len(prefix) :].split(".", 1)[0]) >= layer:
            continue
        out[k] = v
    return out


def _load_hf_folder(folder: Path, cfg: SSLConfig) -> tuple[Wav2Vec2Arch, dict[str, Tensor]]:
    """A Hugging Face model folder (config.json + weights), truncated at load, via torchaudio's importer."""
    from torchaudio.models.wav2vec2.utils import import_huggingface_model

    try:
        from transformers import AutoConfig, AutoModel
    except ImportError as e:  # pragma: no cover - transformers ships with the train extra's environment
        raise SSLWeightsError("loading a Hugging Face model folder needs `pip install transformers`") from e
    if not (folder / "config.json").is_file():
        raise SSLWeightsError(f"{folder}: not a Hugging Face model folder (no config.json)")
    try:
        hf_cfg = AutoConfig.from_pretrained(str(folder), local_files_only=True)
        total = int(hf_cfg.num_hidden_layers)
        if cfg.layer > total:
            raise SSLWeightsError(f"ssl.layer {cfg.layer} > the {total} layers of the model in {folder}")
        # Build only the first `layer` transformer layers; the weights of the others are skipped.
        hf_cfg.num_hidden_layers = cfg.layer
        hf = AutoModel.from_pretrained(str(folder), config=hf_cfg, local_files_only=True)
    except SSLWeightsError:
        raise
    except Exception as e:  # noqa: BLE001 - transformers raises many types for a bad folder
        raise SSLWeightsError(f"{folder}: cannot load the Hugging Face model ({e})") from None
    kind = type(hf).__name__
    if kind not in ("Wav2Vec2Model", "HubertModel", "WavLMModel"):
        raise SSLWeightsError(f"{folder}: {kind} is not a wav2vec2-family model torchaudio can import")
    imported = import_huggingface_model(hf.eval())
    model_type = "wavlm" if kind == "WavLMModel" else "wav2vec2"
    if model_type != _model_type_for(cfg.family):
        raise SSLWeightsError(f"{folder}: holds a {kind} but ssl.family is {cfg.family!r}")
    normalize = False
    pre = folder / "preprocessor_config.json"
    if pre.is_file():
        try:
            normalize = bool(json.loads(pre.read_text()).get("do_normalize", False))
        except (OSError, ValueError) as e:
            raise SSLWeightsError(f"{pre}: unreadable ({e})") from None
    params = _hf_params(hf_cfg, model_type)
    params["encoder_num_layers"] = total
    arch = Wav2Vec2Arch(model_type, _normalise_params(params, model_type), normalize)
    return arch, imported.state_dict()


def _hf_params(hf_cfg: Any, model_type: str) -> dict[str, Any]:
    from torchaudio.models.wav2vec2.utils import import_huggingface as ih

    params = ih._get_config_wavlm(hf_cfg) if model_type == "wavlm" else ih._get_config(hf_cfg)
    return dict(params)


def resolve_wav2vec2(
    cfg: SSLConfig, *, load_weights: bool = True
) -> tuple[Wav2Vec2Arch, dict[str, Tensor] | None]:
    """The architecture (and, with ``load_weights``, the state dict) that ``cfg`` points at.

    Sources in order: ``checkpoint`` (state-dict file, with ``arch`` or ``bundle`` for the
    architecture; or a Hugging Face folder), ``bundle`` (torch hub cache only), ``arch`` (random).
    """
    model_type = _model_type_for(cfg.family)
    state: dict[str, Tensor] | None
    if cfg.checkpoint:
        path = Path(cfg.checkpoint).expanduser()
        if not path.exists():
            raise SSLWeightsError(f"ssl.checkpoint: {path} does not exist")
        if path.is_dir():
            arch, state = _load_hf_folder(path, cfg)
        else:
            if cfg.arch is not None:
                arch = Wav2Vec2Arch(model_type, _normalise_params(dict(cfg.arch), model_type), False)
            elif cfg.bundle:
                arch = _bundle_arch(cfg.bundle, cfg.family)
            else:
                raise SSLWeightsError(
                    "ssl.checkpoint is a state-dict file: also give ssl.arch (torchaudio factory kwargs) "
                    "or ssl.bundle (a torchaudio bundle name) so that its architecture is known"
                )
            state = _load_state_file(path) if load_weights else None
    elif cfg.bundle:
        arch = _bundle_arch(cfg.bundle, cfg.family)
        state = None
        if load_weights:
            weights = bundle_weights_path(cfg.bundle)
            if not weights.is_file():
                raise SSLWeightsError(
                    f"ssl.bundle {cfg.bundle}: its weights are not in the torch hub cache ({weights}); "
                    f"nothing is downloaded at run time. Fetch them once on a machine with network, e.g. "
                    f"`curl -L -o {weights} {_bundle_url(cfg.bundle)}` (or run "
                    f"`python -c 'import torchaudio; torchaudio.pipelines.{cfg.bundle}.get_model()'`), "
                    f"set TORCH_HOME to point at another cache, or use ssl.checkpoint with a local file"
                )
            state = _load_state_file(weights)
    elif cfg.arch is not None:
        arch = Wav2Vec2Arch(model_type, _normalise_params(dict(cfg.arch), model_type), False)
        state = None
    else:  # SSLConfig validation prevents this
        raise SSLWeightsError("ssl: give one of bundle, checkpoint or arch")
    if cfg.normalize_waveform is not None:
        arch = dataclasses.replace(arch, normalize_waveform=cfg.normalize_waveform)
    return arch, state


class Wav2Vec2Encoder(SSLEncoder):
    """A torchaudio wav2vec2-family model truncated after transformer layer ``layer`` (1-based).

    Only layers 1..``layer`` exist in the module. ``forward(wave16 [B, T]) -> [B, frames, dim]``:
    the raw output of layer ``layer`` (before any final encoder LayerNorm), 20 ms frames,
    ``frames = conv-stack output length`` (``(T - 400) // 320 + 1`` for the standard CNN).
    The convolutional position embedding's weight norm is baked into a plain weight.
    """

    def __init__(
        self, arch: Wav2Vec2Arch, layer: int, *, frozen: bool = True, state: dict[str, Tensor] | None = None
    ):
        super().__init__(frozen=frozen)
        from torchaudio.models import wav2vec2_model, wavlm_model

        total = int(arch.params["encoder_num_layers"])
        if not 1 <= layer <= total:
            raise SSLWeightsError(f"ssl.layer must be in 1..{total} for this encoder, got {layer}")
        self.arch = arch
        self.layer = layer
        self.total_layers = total
        self.normalize_waveform = arch.normalize_waveform
        params = dict(arch.params, encoder_num_layers=layer, aux_num_out=None)
        factory = wavlm_model if arch.model_type == "wavlm" else wav2vec2_model
        model = factory(**params)
        if state is not None:
            self._load(model, _truncate_state(state, layer))
        self.feature_extractor = model.feature_extractor
        self.feature_projection = model.encoder.feature_projection
        transformer = model.encoder.transformer
        pos = transformer.pos_conv_embed
        if hasattr(pos, "conv") and hasattr(pos.conv, "parametrizations"):
            torch.nn.utils.parametrize.remove_parametrizations(pos.conv, "weight", leave_parametrized=True)
        self.pos_conv_embed = pos
        self.pre_norm = transformer.layer_norm if transformer.layer_norm_first else None
        self.layers = transformer.layers
        self.dim = int(params["encoder_embed_dim"])
        conv = params["extractor_conv_layer_config"] or _DEFAULT_CONV
        self._conv = [(int(k), int(s)) for _, k, s in conv]
        self.frame_hop = math.prod(s for _, s in self._conv)
        self.min_samples = self._min_samples()
        if frozen:
            self.freeze()

    @staticmethod
    def _load(model: nn.Module, state: dict[str, Tensor]) -> None:
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as e:  # shape mismatches
            first = str(e).split("\n\t")[1:3]
            raise SSLWeightsError(
                f"the SSL weights do not fit the architecture: {'; '.join(first)}"
            ) from None
        if result.missing_keys or result.unexpected_keys:
            raise SSLWeightsError(
                "the SSL weights do not fit the architecture: "
                f"missing {result.missing_keys[:5]}{'...' if len(result.missing_keys) > 5 else ''}, "
                f"unexpected {result.unexpected_keys[:5]}{'...' if len(result.unexpected_keys) > 5 else ''}"
            )

    def _min_samples(self) -> int:
        n = 1
        for k, s in reversed(self._conv):
            n = (n - 1) * s + k
        return n

    def num_frames(self, samples: int) -> int:
        n = samples
        for k, s in self._conv:
            n = (n - k) // s + 1
        return max(n, 0)

    def describe(self) -> dict[str, Any]:
        return {"kind": "wav2vec2", "arch": self.arch.to_dict(), "layer": self.layer}

    def forward(self, wave16: Tensor) -> Tensor:
        x = wave16
        if self.normalize_waveform:
            # Per utterance (torchaudio's bundles normalise the whole batch tensor at once, which is
            # the same thing for batch 1, the way the paper extracted its features).
            mean = x.mean(dim=-1, keepdim=True)
            var = (x - mean).pow(2).mean(dim=-1, keepdim=True)
            x = (x - mean) / torch.sqrt(var + 1e-5)
        x, _ = self.feature_extractor(x, None)
        x = self.feature_projection(x)
        x = x + self.pos_conv_embed(x)
        if self.pre_norm is not None:
            x = self.pre_norm(x)
        position_bias = None
        for layer in self.layers:
            x, position_bias = layer(x, None, position_bias=position_bias)
        return x


# ------------------------------------------------------------------------------------- distillmos
DISTILLMOS_LAYERS = 7
DISTILLMOS_DIM = 200
_DM_SEQ_LEN = 384
_DM_HEADS = 8


def distillmos_weights_path() -> Path:
    """The Distill-MOS v7 weights file inside the installed distillmos package."""
    try:
        root = importlib.resources.files("distillmos")
    except ModuleNotFoundError as e:
        raise SSLWeightsError(
            "ssl.family 'distillmos' needs the PyPI package: pip install distillmos==0.9.1"
        ) from e
    path = Path(str(root)) / "weights" / "distill_mos_v7.pt"
    if not path.is_file():
        raise SSLWeightsError(f"the distillmos package has no weights file at {path}; reinstall distillmos")
    return path


class _EncoderLayer(nn.Module):
    """``nn.TransformerEncoderLayer`` (post-norm, ReLU, batch first) written with plain ops.

    Same parameter names as the torch module (so its state dict loads as is), but no fused fast
    path, so it traces and exports identically for every length.
    """

    def __init__(self, d_model: int, nhead: int, dim_ff: int) -> None:
        super().__init__()
        self.nhead = nhead
        self.self_attn = nn.MultiheadAttention(d_model, nhead, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_ff)
        self.linear2 = nn.Linear(dim_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def _attention(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        h = self.nhead
        qkv = F.linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias)
        qkv = qkv.reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d // h))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        out = out.transpose(1, 2).reshape(b, n, d)
        return self.self_attn.out_proj(out)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm1(x + self._attention(x))
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


def sinusoidal_positions(frames: int, d_model: int, base_len: int, like: Tensor) -> Tensor:
    """distillmos's fixed positional table ``[frames, d_model]`` for any number of frames.

    Same formula as xls_r_sqa's PositionalEncoding (angle ``pos * exp(-2i log(2 * base_len) / d)``,
    sin on even, cos on odd channels), computed from ``arange(frames)`` so no length is baked in.
    """
    pos = torch.arange(frames, device=like.device, dtype=like.dtype).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, d_model, 2, device=like.device, dtype=like.dtype)
        * (-math.log(2 * base_len) / d_model)
    )
    angle = pos * div
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).reshape(-1, d_model)


class DistillMOSEncoder(SSLEncoder):
    """The Distill-MOS v7 encoder, rebuilt for any input length, truncated after ``layer`` (1..7).

    ``forward(wave16 [B, T]) -> [B, frames, 200]`` with ``frames = ceil((T // 160) / 2)`` (20 ms):
    per-input peak normalisation ``x / (max|x| + 1e-8)``; reflect pad 80; STFT 320/160 with a
    periodic Hann window as a DFT Conv1d; complex compression ``|X|^0.3 * X / |X|``; the six-layer
    CNN; BatchNorm (twice, as distillmos), Linear 1024 -> 200, sinusoidal positions for the actual
    number of frames (base length 384, so 7.68 s inputs match distillmos exactly); the first
    ``layer`` transformer layers. Shortest input: 160 samples.
    """

    def __init__(
        self, layer: int = DISTILLMOS_LAYERS, *, frozen: bool = True, load_weights: bool = True
    ) -> None:
        super().__init__(frozen=frozen)
        if not 1 <= layer <= DISTILLMOS_LAYERS:
            raise SSLWeightsError(f"ssl.layer must be in 1..{DISTILLMOS_LAYERS} for distillmos, got {layer}")
        self.layer = layer
        self.dim = DISTILLMOS_DIM
        self.frame_hop = 320
        self.min_samples = 160
        self.hop = 160
        self.pad = 80
        self.dft = DFTConv(320, 320, 160)
        convs: list[nn.Module] = []
        prev, n_layers = 2, 6
        for i in range(n_layers):
            ch = min(64 * 2 ** max(i - 1, 0), 256)
            stride = (2 if i >= 1 else 1, 2 if i == n_layers - 1 else 1)
            convs += [nn.Conv2d(prev, ch, (3, 3), stride=stride, padding=(0, 1)), nn.LeakyReLU(0.1)]
            prev = ch
        self.cnn = nn.Sequential(*convs)
        feat_dim = 256 * 4
        self.norm_input = nn.BatchNorm1d(feat_dim)
        self.norm = nn.BatchNorm1d(feat_dim)
        self.linear_proj = nn.Linear(feat_dim, DISTILLMOS_DIM)
        self.layers = nn.ModuleList(
            _EncoderLayer(DISTILLMOS_DIM, _DM_HEADS, 2 * DISTILLMOS_DIM) for _ in range(layer)
        )
        if load_weights:
            self.load_package_weights()
        if frozen:
            self.freeze()

    def _package_state(self) -> dict[str, Tensor]:
        path = distillmos_weights_path()
        try:
            ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
            src: dict[str, Tensor] = ckpt["model"]
        except Exception as e:  # noqa: BLE001
            raise SSLWeightsError(f"{path}: cannot read the distillmos weights ({e})") from None
        out: dict[str, Tensor] = {}
        tp = "transformer_pool_attn."
        for k, v in src.items():
            if k.startswith("cnn.cnn."):
                out["cnn." + k[len("cnn.cnn.") :]] = v
            elif k.startswith(tp + "norm_input."):
                out["norm_input." + k[len(tp + "norm_input.") :]] = v
            elif k.startswith(tp + "transformer.norm."):
                out["norm." + k[len(tp + "transformer.norm.") :]] = v
            elif k.startswith(tp + "transformer.linear_proj."):
                out["linear_proj." + k[len(tp + "transformer.linear_proj.") :]] = v
            elif k.startswith(tp + "transformer.transformer_encoder.layers."):
                rest = k[len(tp + "transformer.transformer_encoder.layers.") :]
                if int(rest.split(".", 1)[0]) < self.layer:
                    out["layers." + rest] = v
        return out

    def load_package_weights(self) -> None:
        """Load the weights shipped in the distillmos package (no network)."""
        result = self.load_state_dict(self._package_state(), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise SSLWeightsError(
                f"distillmos weights do not fit: missing {result.missing_keys}, "
                f"unexpected {result.unexpected_keys}"
            )

    def num_frames(self, samples: int) -> int:
        stft = (samples + 2 * self.pad - 320) // self.hop + 1 if samples >= self.min_samples else 0
        return (stft + 1) // 2

    def describe(self) -> dict[str, Any]:
        return {"kind": "distillmos", "layer": self.layer}

    def spectrum(self, wave16: Tensor) -> Tensor:
        """Peak-normalised, complex-compressed STFT ``[B, 2, 161, stft_frames]`` (real, imag)."""
        x = wave16 / (wave16.abs().amax(dim=-1, keepdim=True) + 1e-8)
        x = F.pad(x.unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)
        real, imag = self.dft(x)
        mag = torch.clamp(torch.sqrt(real * real + imag * imag), min=1e-12)
        gain = mag.pow(0.3) / mag
        return torch.stack([real * gain, imag * gain], dim=1)

    def forward(self, wave16: Tensor) -> Tensor:
        x = self.cnn(self.spectrum(wave16))  # [B, 256, 4, frames]
        x = torch.flatten(x, 1, 2).transpose(1, 2)  # [B, frames, 1024]
        x = self.norm_input(x.transpose(1, 2))
        x = self.norm(x).transpose(1, 2)
        x = self.linear_proj(x)
        x = x + sinusoidal_positions(x.shape[1], DISTILLMOS_DIM, _DM_SEQ_LEN, x)
        for layer in self.layers:
            x = layer(x)
        return x


# ------------------------------------------------------------------------------------------ build
def build_ssl_encoder(cfg: SSLConfig, *, load_weights: bool = True) -> SSLEncoder:
    """The SSL encoder ``cfg`` describes, truncated after ``cfg.layer`` and frozen if ``cfg.frozen``.

    ``load_weights=False`` builds the architecture only (random weights; a checkpoint's stored
    weights are loaded afterwards). Raises :class:`SSLWeightsError` (a ValueError) with a fix when
    weights are missing or do not fit; ``family="none"`` has no encoder (ValueError).
    """
    if cfg.family == "none":
        raise SSLWeightsError("ssl.family is 'none': this model has no SSL branch")
    if cfg.family == "distillmos":
        return DistillMOSEncoder(cfg.layer, frozen=cfg.frozen, load_weights=load_weights)
    arch, state = resolve_wav2vec2(cfg, load_weights=load_weights)
    return Wav2Vec2Encoder(arch, cfg.layer, frozen=cfg.frozen, state=state)


def encoder_from_description(desc: dict[str, Any], *, frozen: bool) -> SSLEncoder:
    """Rebuild an encoder's architecture from :meth:`SSLEncoder.describe` (weights loaded afterwards)."""
    kind = desc.get("kind")
    if kind == "distillmos":
        return DistillMOSEncoder(int(desc["layer"]), frozen=frozen, load_weights=False)
    if kind == "wav2vec2":
        return Wav2Vec2Encoder(Wav2Vec2Arch.from_dict(desc["arch"]), int(desc["layer"]), frozen=frozen)
    raise SSLWeightsError(f"unknown SSL encoder description {kind!r}")
