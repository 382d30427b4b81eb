"""The encoder inside the distillmos package, rebuilt for any input length and ONNX export (see
:mod:`samos.model.ssl`)."""

from __future__ import annotations

import importlib.resources
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samos.model.frontend import DFTConv
from samos.model.ssl.base import SSLEncoder, SSLWeightsError, check_layer_mix

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
    ``layer`` transformer layers (``layer_mix="mean"``: the mean of their outputs). Shortest input:
    160 samples. :meth:`frames` and :meth:`context` split it for incremental streaming (``incremental``).
    """

    incremental = True

    def __init__(
        self,
        layer: int = DISTILLMOS_LAYERS,
        *,
        layer_mix: str = "last",
        frozen: bool = True,
        load_weights: bool = True,
    ) -> None:
        super().__init__(frozen=frozen)
        if not 1 <= layer <= DISTILLMOS_LAYERS:
            raise SSLWeightsError(f"ssl.layer must be in 1..{DISTILLMOS_LAYERS} for distillmos, got {layer}")
        self.layer = layer
        self.layer_mix = check_layer_mix(layer_mix)
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
        return self._described({"kind": "distillmos", "layer": self.layer})

    def spectrum(self, wave16: Tensor) -> Tensor:
        """Peak-normalised, complex-compressed STFT ``[B, 2, 161, stft_frames]`` (real, imag)."""
        return self._compressed_stft(peak_normalise(wave16))

    def _compressed_stft(self, x: Tensor) -> Tensor:
        x = F.pad(x.unsqueeze(1), (self.pad, self.pad), mode="reflect").squeeze(1)
        real, imag = self.dft(x)
        mag = torch.clamp(torch.sqrt(real * real + imag * imag), min=1e-12)
        gain = mag.pow(0.3) / mag
        return torch.stack([real * gain, imag * gain], dim=1)

    def _project(self, x: Tensor) -> Tensor:
        """CNN output ``[B, 256, 4, frames]`` -> per-frame features ``[B, frames, 200]`` (BatchNorm in
        eval mode and the linear projection act on each frame alone)."""
        x = torch.flatten(x, 1, 2).transpose(1, 2)  # [B, frames, 1024]
        x = self.norm_input(x.transpose(1, 2))
        x = self.norm(x).transpose(1, 2)
        return self.linear_proj(x)

    def frames(self, wave16: Tensor) -> Tensor:
        """Position-independent frame features ``[B, stft_frames, 200]`` at 10 ms, WITHOUT peak
        normalisation (the caller applies its gain).

        The CNN's last conv runs at stride 1 in time, so frame ``i`` is the 20 ms encoder frame that a
        window starting at STFT frame ``i`` (or ``i - 2k``) sees: ``context(frames(x)[:, ::2])`` equals
        ``forward(x)`` for a peak-normalised ``x``. Any window start on the 10 ms grid can reuse them.
        """
        x = self._compressed_stft(wave16)
        convs = list(self.cnn)
        for m in convs[:-2]:
            x = m(x)
        last: nn.Conv2d = convs[-2]  # type: ignore[assignment]
        x = F.conv2d(x, last.weight, last.bias, stride=(last.stride[0], 1), padding=last.padding)
        return self._project(convs[-1](x))

    def context(self, frames20: Tensor) -> Tensor:
        """20 ms frame features ``[B, frames, 200]`` -> encoder output ``[B, frames, 200]``: sinusoidal
        positions for the actual number of frames, then the transformer layers (whole-window part):
        the last one's output, or with ``layer_mix="mean"`` the mean of every layer's."""
        x = frames20 + sinusoidal_positions(frames20.shape[1], DISTILLMOS_DIM, _DM_SEQ_LEN, frames20)
        total = None
        for layer in self.layers:
            x = layer(x)
            if self.layer_mix == "mean":
                total = x if total is None else total + x
        return x if total is None else total / len(self.layers)

    def forward(self, wave16: Tensor) -> Tensor:
        return self.context(self._project(self.cnn(self.spectrum(wave16))))


def peak_normalise(wave16: Tensor) -> Tensor:
    """distillmos's per-input gain: ``x / (max|x| + 1e-8)`` over the last axis."""
    return wave16 / (wave16.abs().amax(dim=-1, keepdim=True) + 1e-8)
