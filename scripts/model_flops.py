"""Multiply-accumulates of a samos model per audio-second, counted on the module's own layers.

    .venv/bin/python scripts/model_flops.py configs/compact.yaml [configs/default.yaml ...]
    .venv/bin/python scripts/model_flops.py --members 2 configs/compact.yaml   # a seed ensemble of 2

Runs 10 s of audio through the model once with forward hooks on every Conv1d / Conv2d / Linear, the
DFT front ends and every multi-head attention (its projections and two batched products), and prints
MACs and FLOPs (2 x MACs) per audio-second and the parameter count. Elementwise work (norms,
activations, pooling) is left out: a few percent.
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from samos.train.config import load_train_config

SECONDS = 10.0


def count(config: str, members: int = 1) -> tuple[float, int]:
    """``(MACs per audio-second, parameters)`` of the model ``config`` describes (or of a seed ensemble
    of ``members`` such models, which computes the spectrogram once)."""
    from samos.model import SAMOS
    from samos.model.ensemble import SAMOSEnsemble
    from samos.model.frontend import DFTConv

    cfg = load_train_config(config).model
    model: nn.Module = SAMOS(cfg) if members == 1 else SAMOSEnsemble([SAMOS(cfg) for _ in range(members)])
    model.eval()
    macs = 0.0

    def conv(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(m, (nn.Conv1d, nn.Conv2d))
        per_out = m.in_channels // m.groups * int(torch.tensor(m.kernel_size).prod())
        macs += out.numel() * per_out

    def linear(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal macs
        assert isinstance(m, nn.Linear)
        macs += out.numel() * m.in_features

    def attention(m: nn.Module, inp: tuple[torch.Tensor, ...], _out: object) -> None:
        nonlocal macs
        assert isinstance(m, nn.MultiheadAttention)
        x = inp[0]
        tokens = x.shape[0] * x.shape[1]
        length = x.shape[1] if m.batch_first else x.shape[0]
        macs += 2 * tokens * length * m.embed_dim  # QK^T and AV
        macs += 3 * tokens * m.embed_dim * m.embed_dim  # the q, k, v projections (out_proj is a Linear)

    def dft(m: nn.Module, _inp: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, torch.Tensor]) -> None:
        nonlocal macs
        assert isinstance(m, DFTConv)
        macs += 2 * out[0].numel() * m.n_fft  # real and imaginary rows, one n_fft-tap product each

    for mod in model.modules():
        if isinstance(mod, DFTConv):
            mod.register_forward_hook(dft)
        elif isinstance(mod, (nn.Conv1d, nn.Conv2d)):
            mod.register_forward_hook(conv)
        elif isinstance(mod, nn.Linear):
            mod.register_forward_hook(linear)
        elif isinstance(mod, nn.MultiheadAttention):
            mod.register_forward_hook(attention)
    n16 = int(SECONDS * 16_000)
    w16 = 0.1 * torch.randn(1, n16)
    w48 = 0.1 * torch.randn(1, 3 * n16)
    inputs = {"wave16": w16, "wave48": w48}
    with torch.no_grad():
        model(**{name: inputs[name] for name in model.input_names})
    return macs / SECONDS, sum(p.numel() for p in model.parameters())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="*", default=["configs/compact.yaml"], help="training YAML files")
    p.add_argument("--members", type=int, default=1, help="count a seed ensemble of this many models")
    args = p.parse_args()
    for config in args.configs:
        macs, params = count(config, args.members)
        what = f"{config} x{args.members}" if args.members > 1 else config
        print(
            f"{what}: {macs / 1e9:.3f} GMAC = {2 * macs / 1e9:.3f} GFLOP per audio-second, "
            f"{params:,} parameters"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
