"""The training loop: one function per step, the two-step recipe on top.

Per step: Adam (lr, weight decay) over the trainable parameters, ExponentialLR stepped every
iteration, Gaussian NLL on (mean, var), validation after every epoch (and once before the first, as
epoch 0), model selection on the best validation utterance-level Pearson correlation.

Step folder ``<out>/<step>/`` holds ``best.pt`` (samos checkpoint), ``last.pt`` (samos checkpoint +
``train_state``: optimizer, scheduler, epoch, best PCC, RNG states, history; used by ``--resume``),
``metrics.csv``, ``metrics.json`` and ``curves.png``. ``<out>/final.pt`` is the best model of the last
step that ran.

Frozen SSL features are cached when ``cache_dir`` is set (see :mod:`samos.data.cache`); crops are then
deterministic per clip (see :mod:`samos.data.dataset`).
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset
from tqdm import tqdm

from samos.config import ConfigError, to_dict
from samos.data.cache import FeatureCache, encoder_identity, feature_key, file_sha256
from samos.data.dataset import RatedAudioDataset, collate
from samos.data.manifest import Manifest, SkipReport, read_manifests, validate
from samos.data.synthetic import generate
from samos.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from samos.model.samos_model import SAMOS
from samos.train.config import DataConfig, StepConfig, TrainConfig
from samos.train.distributed import Dist, init_distributed, shutdown
from samos.train.metrics import agreement


class TrainingError(ValueError):
    """A run that cannot start or continue (no usable data, bad resume state, ...)."""


Log = Callable[[str], None]
SINGLE = Dist()
"""The single-process default (no torchrun)."""


def _print(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------ setup
def resolve_device(name: str) -> torch.device:
    """ "auto" (cuda if available, else cpu), "cpu", "cuda", "cuda:N"."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {name!r} requested but CUDA is not available")
    return dev


def _quiet(msg: str) -> None:
    """The log of ranks other than 0."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def load_split(
    data: DataConfig, split: str, out_dir: Path, log: Log = _print, dist: Dist = SINGLE
) -> Manifest:
    """Read (or synthesise), then validate the ``split`` ("train" / "valid") manifests of a step."""
    if data.format == "synthetic":
        if dist.is_main:
            generate(data.synthetic_cfg, out_dir / "synthetic", split)
        dist.barrier()
        paths = [generate(data.synthetic_cfg, out_dir / "synthetic", split)]
        fmt, root = "generic", None
    else:
        paths = [Path(p) for p in (data.train if split == "train" else data.valid)]
        fmt = data.format
        root = data.valid_root if split == "valid" and data.valid_root else data.root
    manifest = validate(read_manifests(paths, root, fmt), probe=data.probe_audio)
    total = len(manifest) + manifest.skipped.total
    if manifest.skipped:
        log(f"[{split}] {manifest.skipped.summary(of=total)}")
    if not len(manifest):
        raise TrainingError(f"[{split}] no usable items in {', '.join(map(str, paths))}")
    log(f"[{split}] {len(manifest)} clips from {', '.join(map(str, paths))}")
    return manifest


# ---------------------------------------------------------------------------------- feature cache
class _CropSource(Dataset):
    """16 kHz crops + cache keys of a dataset's items (for filling the cache with a DataLoader)."""

    def __init__(self, ds: RatedAudioDataset, enc_id: dict[str, Any]) -> None:
        self.ds, self.enc_id = ds, enc_id

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            w16, _, start, length = self.ds.load_views(i)
            key = feature_key(file_sha256(self.ds.manifest[i].path), self.enc_id, start, length)
        except (ValueError, OSError) as e:
            return {"skip": (str(self.ds.manifest[i].path), f"unreadable_at_load: {str(e)[:120]}")}
        return {"key": key, "wave16": torch.from_numpy(np.ascontiguousarray(w16))}


def _collate_crops(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return batch


def fill_cache(
    model: SAMOS,
    ds: RatedAudioDataset,
    cache: FeatureCache,
    enc_id: dict[str, Any],
    device: torch.device,
    batch_size: int,
    num_workers: int,
    desc: str,
    dist: Dist = SINGLE,
) -> SkipReport:
    """Compute and store the SSL features of every item's deterministic crop not yet cached.

    Under torchrun each rank fills every ``world``-th item; the atomic writes make that safe.
    """
    report = SkipReport()
    source: Dataset = _CropSource(ds, enc_id)
    if dist.enabled:
        source = Subset(source, list(range(dist.rank, len(ds), dist.world)))
    loader = DataLoader(source, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate_crops)
    model.eval()
    for batch in tqdm(
        loader, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, disable=not dist.is_main
    ):
        todo = []
        for b in batch:
            if "skip" in b:
                report.add("unreadable_at_load", *b["skip"])
            elif b["key"] in cache:
                cache.stats.hits += 1
            else:
                cache.stats.misses += 1
                todo.append(b)
        if not todo:
            continue
        by_len: dict[int, list[dict[str, Any]]] = {}
        for b in todo:
            by_len.setdefault(int(b["wave16"].shape[0]), []).append(b)
        with torch.no_grad():
            for group in by_len.values():
                w16 = torch.stack([b["wave16"] for b in group]).to(device)
                feats = model.ssl_features(w16).float().cpu().numpy()
                for b, f in zip(group, feats, strict=True):
                    cache.put(b["key"], f)
    return report


# ------------------------------------------------------------------------------------- one epoch
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
    bar = tqdm(
        loader,
        desc=desc,
        leave=False,
        file=sys.stderr,
        dynamic_ncols=True,
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
    for batch in tqdm(
        loader, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True, disable=not dist.is_main
    ):
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


# ------------------------------------------------------------------------------------ artefacts
def write_history(step_dir: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.csv``, ``metrics.json`` and ``curves.png`` (learning curves) of one step."""
    if not history:
        return
    cols = list(history[0].keys())
    tmp = step_dir / "metrics.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(history)
    os.replace(tmp, step_dir / "metrics.csv")
    tmp = step_dir / "metrics.json.tmp"
    tmp.write_text(json.dumps(history, indent=1, default=float))
    os.replace(tmp, step_dir / "metrics.json")
    plot_curves(history, step_dir / "curves.png")


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    tr = [(h["epoch"], h["train_loss"]) for h in history if h["train_loss"] == h["train_loss"]]
    if tr:
        a1.plot(*zip(*tr, strict=True), "o-", label="train NLL")
    a1.plot(ep, [h["val_loss"] for h in history], "s-", label="valid NLL")
    a1.set_xlabel("epoch")
    a1.set_ylabel("Gaussian NLL")
    a1.legend()
    a1.grid(alpha=0.3)
    a2.plot(ep, [h["val_pcc"] for h in history], "o-", label="valid PCC")
    a2.plot(ep, [h["val_srcc"] for h in history], "s-", label="valid SRCC")
    a2.set_xlabel("epoch")
    a2.set_ylabel("correlation")
    a2.legend()
    a2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "python" in state:
        random.setstate((3, tuple(state["python"]), None))


def save_last(path: Path, model: SAMOS, metadata: dict[str, Any], train_state: dict[str, Any]) -> None:
    """A samos checkpoint plus ``train_state`` (for ``--resume``), written atomically."""
    save_checkpoint(path, model, metadata=metadata)
    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    obj["train_state"] = train_state
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, str(tmp))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------- one step
@dataclass
class StepResult:
    name: str
    best_path: Path
    best_pcc: float
    history: list[dict[str, Any]]


def _loader(
    ds: Dataset, batch_size: int, shuffle: bool, workers: int, seed: int, dist: Dist = SINGLE, epoch: int = 0
) -> DataLoader:
    """Batches of this rank's shard; the order is drawn from ``(seed, epoch)`` (resumable)."""
    sampler: DistributedSampler = DistributedSampler(
        ds, num_replicas=dist.world, rank=dist.rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    sampler.set_epoch(epoch)
    return DataLoader(
        ds, batch_size=batch_size, sampler=sampler, num_workers=workers, collate_fn=collate, drop_last=False
    )


def run_step(
    name: str,
    step: StepConfig,
    model: SAMOS,
    out_dir: Path,
    device: torch.device,
    *,
    resume: bool = False,
    log: Log = _print,
    dist: Dist = SINGLE,
) -> StepResult:
    """Train ``model`` in place for one step; returns where its best checkpoint is.

    Under torchrun (``dist``) every rank runs this; only rank 0 writes checkpoints and metrics.
    """
    step_dir = out_dir / name
    step_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(step.seed)
    train_m = load_split(step.data, "train", out_dir, log, dist)
    valid_m = load_split(step.data, "valid", out_dir, log, dist)
    model.to(device)

    has_ssl, has_spec = model.ssl is not None, model.spec_encoder is not None
    features = None
    if step.cache_dir and has_ssl and model.ssl_frozen:
        assert model.ssl is not None
        cache_root = Path(step.cache_dir)
        cache = FeatureCache(
            cache_root if cache_root.is_absolute() else out_dir / cache_root, step.cache_dtype
        )
        enc_id = encoder_identity(model.cfg.ssl, model.ssl)
        features = (cache, enc_id)
        for split, m in (("train", train_m), ("valid", valid_m)):
            src = RatedAudioDataset(m, step.crop_seconds, min_samples=model.min_samples, need_wave48=False)
            desc = f"{name}: caching SSL features ({split})"
            skipped = fill_cache(
                model, src, cache, enc_id, device, step.batch_size, step.num_workers, desc, dist
            )
            if skipped:
                log(f"[{split}] while caching: {skipped.summary()}")
        dist.barrier()
        log(f"[{name}] feature cache {cache.root}: {cache.stats}")

    common: dict[str, Any] = dict(
        min_samples=model.min_samples, features=features, need_wave16=has_ssl, need_wave48=has_spec
    )
    train_ds = RatedAudioDataset(train_m, step.crop_seconds, random_crop=True, seed=step.seed, **common)
    valid_ds = RatedAudioDataset(valid_m, step.crop_seconds, random_crop=False, **common)
    valid_loader = _loader(valid_ds, step.batch_size, False, step.num_workers, step.seed, dist)

    head: nn.Module = TrainablePart(model)
    if dist.enabled:
        head = DistributedDataParallel(head, device_ids=[device.index] if device.type == "cuda" else None)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=step.lr, weight_decay=step.weight_decay)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=step.gamma)
    loss_fn = nn.GaussianNLLLoss()
    history: list[dict[str, Any]] = []
    best_pcc, start_epoch = -math.inf, 1
    last_path, best_path = step_dir / "last.pt", step_dir / "best.pt"
    meta_base = {
        "torch_version": str(torch.__version__),
        "step": name,
        "train": train_m.source,
        "valid": valid_m.source,
        "step_config": to_dict(step),
    }

    if resume and last_path.is_file():
        obj = read_checkpoint(last_path)
        ts = obj.get("train_state")
        if not ts:
            raise TrainingError(f"{last_path}: holds no train_state, cannot resume")
        model.load_state_dict(obj["state_dict"], strict=False)
        opt.load_state_dict(ts["optimizer"])
        sched.load_state_dict(ts["scheduler"])
        _set_rng_state(ts["rng"])
        history = list(ts["history"])
        best_pcc = float(ts["best_pcc"])
        start_epoch = int(ts["epoch"]) + 1
        log(f"[{name}] resumed after epoch {ts['epoch']} (best valid PCC {best_pcc:.4f})")
        if start_epoch > step.epochs:
            log(f"[{name}] already complete")
            return StepResult(name, best_path, best_pcc, history)

    def validate_now(epoch: int, train_loss: float, seconds: float, skipped: SkipReport) -> float:
        res = evaluate_loader(model, valid_loader, loss_fn, device, f"{name}: validate", dist)
        a = agreement(res.preds, res.labels)
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": res.loss,
                "val_pcc": a.pcc,
                "val_srcc": a.srcc,
                "val_mse": a.mse,
                "val_rmse": a.rmse,
                "val_n": a.n,
                "lr": sched.get_last_lr()[0],
                "train_seconds": round(seconds, 2),
                "skipped": skipped.total + res.skipped.total,
            }
        )
        log(
            f"[{name}] epoch {epoch}/{step.epochs}: train NLL {train_loss:.4f}, valid NLL {res.loss:.4f}, "
            f"PCC {a.pcc:.4f}, SRCC {a.srcc:.4f}, MSE {a.mse:.4f} ({seconds:.1f} s)"
        )
        if skipped or res.skipped:
            both = SkipReport()
            both.merge(skipped)
            both.merge(res.skipped)
            log(f"[{name}] epoch {epoch}: {both.summary()}")
        return a.pcc

    if not history:  # epoch 0: the starting model, the reference the curves start from
        pcc0 = validate_now(0, math.nan, 0.0, SkipReport())
        if not math.isnan(pcc0):
            best_pcc = pcc0
        if dist.is_main:
            save_checkpoint(best_path, model, metadata={**meta_base, "epoch": 0, "val_pcc": pcc0})
            write_history(step_dir, history)

    for epoch in range(start_epoch, step.epochs + 1):
        t0 = time.perf_counter()
        train_ds.set_epoch(epoch)
        loader = _loader(train_ds, step.batch_size, True, step.num_workers, step.seed, dist, epoch)
        desc = f"{name} epoch {epoch}/{step.epochs}"
        res = train_epoch(
            model, loader, opt, sched, loss_fn, device, step.max_steps_per_epoch, desc, head=head, dist=dist
        )
        pcc = validate_now(epoch, res.loss, time.perf_counter() - t0, res.skipped)
        meta = {**meta_base, "epoch": epoch, "val_pcc": pcc, "val_loss": history[-1]["val_loss"]}
        improved = not math.isnan(pcc) and pcc > best_pcc
        if improved:
            best_pcc = pcc
        if dist.is_main:
            if improved:
                save_checkpoint(best_path, model, metadata=meta)
                log(f"[{name}] new best valid PCC {pcc:.4f} -> {best_path}")
            train_state = {
                "epoch": epoch,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": _rng_state(),
                "best_pcc": best_pcc,
                "history": history,
            }
            save_last(last_path, model, meta, train_state)
            write_history(step_dir, history)
    dist.barrier()
    return StepResult(name, best_path, best_pcc, history)


# ------------------------------------------------------------------------------------ the recipe
def build_model(cfg: TrainConfig, seed: int) -> SAMOS:
    seed_everything(seed)
    return SAMOS(cfg.model)


def run_training(
    cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, log: Log = _print
) -> list[StepResult]:
    """Run step 1 and/or step 2; step 2 starts from step 1's best checkpoint when both run.

    Under ``torchrun`` each process joins the job (gloo on CPU, NCCL on GPU), trains on its shard of
    every epoch, and rank 0 alone writes files and logs.
    """
    out = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        dist, device = init_distributed(cfg.device)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if not dist.is_main:
        log = _quiet
    try:
        if dist.is_main:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.json").write_text(json.dumps(to_dict(cfg), indent=1))
        dist.barrier()
        results: list[StepResult] = []
        for name, step in cfg.steps():
            if results:
                model, _ = load_checkpoint(results[-1].best_path)
                log(f"[{name}] starting from {results[-1].best_path}")
            elif step.init_checkpoint:
                model, _ = load_checkpoint(step.init_checkpoint)
                if to_dict(model.cfg) != to_dict(cfg.model):
                    log(f"[{name}] note: the model config comes from {step.init_checkpoint}, not this file")
                log(f"[{name}] starting from {step.init_checkpoint}")
            else:
                model = build_model(cfg, step.seed)
            n_params = sum(p.numel() for p in model.trainable_parameters())
            where = f"{dist.world} processes, " if dist.enabled else ""
            log(f"[{name}] device {device}, {where}{n_params:,} trainable parameters, {step.epochs} epoch(s)")
            results.append(run_step(name, step, model, out, device, resume=resume, log=log, dist=dist))
        if dist.is_main:
            final, _ = load_checkpoint(results[-1].best_path)
            final_path = save_checkpoint(
                out / "final.pt",
                final,
                metadata={
                    "torch_version": str(torch.__version__),
                    "crop_seconds": cfg.steps()[-1][1].crop_seconds,
                    "steps": [
                        {"name": r.name, "best_val_pcc": r.best_pcc, "epochs": len(r.history) - 1}
                        for r in results
                    ],
                    "train_config": to_dict(cfg),
                },
            )
            log(f"final checkpoint: {final_path} (best valid PCC {results[-1].best_pcc:.4f})")
        dist.barrier()
        return results
    finally:
        shutdown(dist)


__all__ = ["ConfigError", "StepResult", "TrainablePart", "TrainingError", "run_step", "run_training"]
