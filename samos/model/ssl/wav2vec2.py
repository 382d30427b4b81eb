"""wav2vec2-family encoders (wav2vec2, XLS-R, HuBERT, WavLM) truncated after one layer, and where
their weights come from: a torchaudio bundle in the hub cache, a state-dict file, a Hugging Face
folder, or random initialisation (see :mod:`samos.model.ssl`)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from samos.config import SSLConfig
from samos.model.ssl.base import SSLEncoder, SSLWeightsError, check_layer_mix

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
    the raw output of layer ``layer`` (before any final encoder LayerNorm; ``layer_mix="mean"``: the
    mean of layers 1..``layer``), 20 ms frames,
    ``frames = conv-stack output length`` (``(T - 400) // 320 + 1`` for the standard CNN).
    The convolutional position embedding's weight norm is baked into a plain weight.
    """

    def __init__(
        self,
        arch: Wav2Vec2Arch,
        layer: int,
        *,
        layer_mix: str = "last",
        frozen: bool = True,
        state: dict[str, Tensor] | None = None,
    ):
        super().__init__(frozen=frozen)
        from torchaudio.models import wav2vec2_model, wavlm_model

        total = int(arch.params["encoder_num_layers"])
        if not 1 <= layer <= total:
            raise SSLWeightsError(f"ssl.layer must be in 1..{total} for this encoder, got {layer}")
        self.arch = arch
        self.layer = layer
        self.layer_mix = check_layer_mix(layer_mix)
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
        return self._described({"kind": "wav2vec2", "arch": self.arch.to_dict(), "layer": self.layer})

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
        total = None
        for layer in self.layers:
            x, position_bias = layer(x, None, position_bias=position_bias)
            if self.layer_mix == "mean":
                total = x if total is None else total + x
        return x if total is None else total / len(self.layers)
