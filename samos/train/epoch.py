"""One epoch: training (Gaussian NLL, one optimizer step per batch) and evaluation over a loader."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from samos.data.manifest import SkipReport
from samos.model.samos_model import SAMOS
from samos.progress import progress
from samos.train.common import SINGLE, TrainingError
from samos.train.distributed import Dist


@dataclass
class EpochResult:
    loss: float
    preds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vars: np.ndarray = field(default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    skipped: SkipReport = field(default_factory=SkipReport)


class TrainablePart(nn.Module):
    """``forward(feats | None, wave16 | None, wave48 | None) -> (mean, var)``: what DDP wraps.

    Cached SSL features skip the encoder; otherwise it runs here (under ``no_grad`` when frozen), so
    an unfrozen encoder's gradients are synchronised by DDP too.
    """

    def __init__(self, model: SAMOS) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, feats: torch.Tensor | None, wave16: torch.Tensor | None, wave48: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if feats is None and self.model.ssl is not None:
            if wave16 is None:
                raise TrainingError("the SSL branch needs either cached features or wave16")
            feats = self.model.ssl_features(wave16)
        return self.model.forward_features(feats, wave48)


def _forward(
    model: SAMOS, batch: dict[str, Any], device: torch.device, head: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    def get(key: str) -> torch.Tensor | None:
        return batch[key].to(device) if key in batch else None

    return (head or TrainablePart(model))(get("feats"), get("wave16"), get("wave48"))


def _note_skips(report: SkipReport, batch: dict[str, Any]) -> None:
    for path, reason in batch["skipped"]:
        report.add(reason.split(":")[0], path, reason)


def train_epoch(
    model: SAMOS,
    loader: DataLoader,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    loss_fn: nn.Module,
    device: torch.device,
    max_steps: int | None,
    desc: str,
    head: nn.Module | None = None,
    dist: Dist = SINGLE,
) -> EpochResult:
    """One pass over ``loader``; ``head``: the (DDP-wrapped) trainable part, default the model's."""
    model.train()
    report = SkipReport()
    total, count = 0.0, 0.0
    bar = progress(
        loader,
        desc=desc,
        unit="batch",
        leave=False,
        total=min(len(loader), max_steps) if max_steps else len(loader),
        disable=not dist.is_main,
    )
    for step, batch in enumerate(bar):
        if max_steps is not None and step >= max_steps:
            break
        _note_skips(report, batch)
        if batch["size"] == 0:
            continue
        mean, var = _forward(model, batch, device, head)
        target = batch["mos"].to(device)
        loss = loss_fn(mean, target, var)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total += float(loss.detach()) * batch["size"]
        count += batch["size"]
        bar.set_postfix(loss=f"{total / max(count, 1):.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
    bar.close()
    total, count = dist.sum(total, count)
    return EpochResult(loss=total / count if count else math.nan, skipped=report)


@torch.no_grad()
def evaluate_loader(
    model: SAMOS, loader: DataLoader, loss_fn: nn.Module, device: torch.device, desc: str, dist: Dist = SINGLE
) -> EpochResult:
    """Predictions over a loader, in manifest order; ``loss`` = mean Gaussian NLL.

    Under torchrun every rank scores its shard and all ranks get the gathered result.
    """
    model.eval()
    report = SkipReport()
    idx, means, vars_, labels = [], [], [], []
    for batch in progress(loader, desc=desc, unit="batch", leave=False, disable=not dist.is_main):
        _note_skips(report, batch)
        if batch["size"] == 0:
            continue
        mean, var = _forward(model, batch, device)
        idx.append(batch["index"].numpy())
        means.append(mean.float().cpu().numpy())
        vars_.append(var.float().cpu().numpy())
        labels.append(batch["mos"].numpy())
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    parts = dist.all_gather((cat(idx), cat(means), cat(vars_), cat(labels), report))
    if dist.enabled:
        report = SkipReport()
        for part in parts:
            report.merge(part[4])
    all_idx = np.concatenate([p[0] for p in parts])
    if not all_idx.size:
        return EpochResult(loss=math.nan, skipped=report)
    # a DistributedSampler repeats a few items to even out the shards: keep each index once
    _, first = np.unique(all_idx, return_index=True)
    pick = lambda k: np.concatenate([p[k] for p in parts])[first]  # noqa: E731
    preds, vars_all, labels_all = pick(1), pick(2), pick(3)
    nll = loss_fn(torch.from_numpy(preds), torch.from_numpy(labels_all), torch.from_numpy(vars_all))
    return EpochResult(loss=float(nll), preds=preds, vars=vars_all, labels=labels_all, skipped=report)
