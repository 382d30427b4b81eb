"""The Distill-MOS teacher's own output head, on the frozen encoder's last layer.

Distill-MOS (PyPI ``distillmos``) ends its 7-layer transformer with a BatchNorm over the 200
channels, attention pooling over time (NISQA's PoolAttFF) and ``MOS = 1 + 4 sigmoid(.)``. The samos
SSL branch already computes that transformer's output (``ssl.layer 7``), so the teacher's prediction
costs one small extra head; :class:`samos.model.SAMOS` can use it as a frozen anchor that the trained
branches correct by a bounded amount (``fusion.anchor: teacher``), so what the teacher knew survives
where fine-tuning data says nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samos.model.ssl.base import SSLWeightsError
from samos.model.ssl.distillmos import DISTILLMOS_DIM, distillmos_weights_path

_PREFIX = "transformer_pool_attn."


class TeacherHead(nn.Module):
    """Distill-MOS v7's head: ``forward(feats [B, frames, 200]) -> mos [B]`` (1-5), frozen.

    ``feats`` are the output of the encoder's transformer layer 7 (the last). Frames are pooled with
    learned attention weights, so the result does not depend on the number of frames' scale.
    """

    def __init__(self, *, load_weights: bool = True) -> None:
        super().__init__()
        d = DISTILLMOS_DIM
        self.norm_trans = nn.BatchNorm1d(d)
        self.att1 = nn.Linear(d, 2 * d)
        self.att2 = nn.Linear(2 * d, 1)
        self.out = nn.Linear(d, 1)
        if load_weights:
            self.load_package_weights()
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> TeacherHead:
        """Always in eval mode: the BatchNorm keeps the teacher's statistics."""
        return super().train(False)

    def load_package_weights(self) -> None:
        """Load the head from the weights file inside the installed distillmos package."""
        path = distillmos_weights_path()
        try:
            src = torch.load(str(path), map_location="cpu", weights_only=True)["model"]
        except Exception as e:  # noqa: BLE001
            raise SSLWeightsError(f"{path}: cannot read the distillmos weights ({e})") from None
        names = {
            "norm_trans.": "norm_trans.",
            "att1.": "pool.linear1.",
            "att2.": "pool.linear2.",
            "out.": "pool.linear3.",
        }
        state: dict[str, Tensor] = {}
        for ours in self.state_dict():
            head, tail = ours.split(".", 1)
            key = _PREFIX + names[head + "."] + tail
            if key not in src:
                raise SSLWeightsError(f"{path}: no {key} (not the Distill-MOS v7 weights?)")
            state[ours] = src[key]
        self.load_state_dict(state)

    def forward(self, feats: Tensor) -> Tensor:
        x = self.norm_trans(feats.transpose(1, 2)).transpose(1, 2)  # [B, frames, 200]
        att = torch.softmax(self.att2(F.relu(self.att1(x))), dim=1)  # [B, frames, 1]
        pooled = (att * x).sum(dim=1)  # [B, 200]
        return 1.0 + 4.0 * torch.sigmoid(self.out(pooled).squeeze(-1))
