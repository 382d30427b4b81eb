"""The training loop: one function per step, the two-step recipe on top.

Per step: Adam (lr, weight decay) over the trainable parameters, ExponentialLR stepped every
iteration, Gaussian NLL on (mean, var), validation after every epoch (and once before the first, as
epoch 0), model selection on the best validation utterance-level Pearson correlation among the
trained epochs. Epoch 0 is a candidate only when the step starts from a trained model (step 2, or
``init_checkpoint``): a freshly initialised network is a reference for the curves, never the result,
however well its random features happen to correlate with the labels. A step whose model predicts
one MOS for every validation clip ``collapse_epochs`` trained epochs in a row stops with a
``TrainingError`` (a dead mean head seldom recovers; its checkpoints are kept).

Step folder ``<out>/<step>/`` holds ``best.pt`` (samos checkpoint), ``last.pt`` (samos checkpoint +
``train_state``: optimizer, scheduler, epoch, best PCC, RNG states, history; used by ``--resume``),
``metrics.csv``, ``metrics.json`` and ``curves.png``. ``<out>/final.pt`` is the best model of the last
step that ran.

Frozen SSL features are cached when ``cache_dir`` is set (see :mod:`samos.data.cache`); crops are then
deterministic per clip (see :mod:`samos.data.dataset`).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from samos.config import ConfigError, to_dict
from samos.data.cache import FeatureCache, encoder_identity
from samos.data.dataset import RatedAudioDataset, collate
from samos.data.manifest import Manifest, SkipReport, read_manifest, validate
from samos.data.synthetic import generate
from samos.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from samos.model.samos_model import SAMOS
from samos.train.artefacts import rng_state, save_last, set_rng_state, write_history
from samos.train.common import SINGLE, Log, TrainingError
from samos.train.config import DataConfig, StepConfig, TrainConfig
from samos.train.distributed import Dist, init_distributed, shutdown, torch_device
from samos.train.epoch import TrainablePart, evaluate_loader, train_epoch
from samos.train.feature_cache import fill_cache
from samos.train.metrics import agreement
from samos.train.sampling import MixSampler


def _print(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------------------ setup
resolve_device = torch_device
"""The torch device of a config's ``device`` (see :func:`samos.train.distributed.torch_device`)."""


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
    parts = [validate(read_manifest(p, root, fmt), probe=data.probe_audio) for p in paths]
    manifest = Manifest.concat(parts)
    if split == "train" and data.mix is not None:  # the sampler draws each list by its share
        manifest.group_sizes = [len(m) for m in parts]
        empty = [str(p) for p, m in zip(paths, parts, strict=True) if not len(m)]
        if empty:
            raise TrainingError(f"[{split}] data.mix: no usable items in {empty[0]}")
    total = len(manifest) + manifest.skipped.total
    if manifest.skipped:
        log(f"[{split}] {manifest.skipped.summary(of=total)}")
    if not len(manifest):
        raise TrainingError(f"[{split}] no usable items in {', '.join(map(str, paths))}")
    log(f"[{split}] {len(manifest)} clips from {', '.join(map(str, paths))}")
    return manifest


# ------------------------------------------------------------------------------------- one step
@dataclass
class StepResult:
    name: str
    best_path: Path
    best_pcc: float
    history: list[dict[str, Any]]
    best_epoch: int | None = None
    """The epoch best.pt holds (0: the starting model; None: unknown, a run resumed from an older
    last.pt)."""


def _loader(
    ds: Dataset,
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int,
    dist: Dist = SINGLE,
    epoch: int = 0,
    mix: tuple[Sequence[int], Sequence[float]] | None = None,
) -> DataLoader:
    """Batches of this rank's shard; the order is drawn from ``(seed, epoch)`` (resumable).

    ``mix``: (items per manifest, shares) to draw a mix of manifests (:class:`MixSampler`).
    """
    sampler: DistributedSampler | MixSampler
    if mix is not None:
        sampler = MixSampler(mix[0], mix[1], seed, rank=dist.rank, world=dist.world)
    else:
        sampler = DistributedSampler(
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
    from_trained: bool = False,
) -> StepResult:
    """Train ``model`` in place for one step; returns where its best checkpoint is.

    ``from_trained``: the model comes from a checkpoint (epoch 0 may then be the best; otherwise the
    best is always a trained epoch). Under torchrun (``dist``) every rank runs this; only rank 0
    writes checkpoints and metrics.
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
    mix = None
    if step.data.mix is not None and train_m.group_sizes is not None:
        mix = (train_m.group_sizes, step.data.mix)
        log(f"[{name}] mixing {train_m.group_sizes} training clips by shares {list(step.data.mix)}")
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
    has_best, best_epoch = False, None  # best.pt holds a candidate of this step: epoch best_epoch
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
        set_rng_state(ts["rng"])
        history = list(ts["history"])
        best_pcc = float(ts["best_pcc"])
        start_epoch = int(ts["epoch"]) + 1
        has_best, best_epoch = True, ts.get("best_epoch")
        log(f"[{name}] resumed after epoch {ts['epoch']} (best valid PCC {best_pcc:.4f})")
        if start_epoch > step.epochs:
            log(f"[{name}] already complete")
            return StepResult(name, best_path, best_pcc, history, best_epoch)

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
                "val_pred_std": float(np.std(res.preds)) if len(res.preds) else math.nan,
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
        if from_trained:  # a trained start is a candidate: fine-tuning may not beat it
            best_pcc, has_best, best_epoch = (-math.inf if math.isnan(pcc0) else pcc0), True, 0
            if dist.is_main:
                save_checkpoint(best_path, model, metadata={**meta_base, "epoch": 0, "val_pcc": pcc0})
        else:
            log(f"[{name}] epoch 0 is the untrained model: a reference, not a candidate for best.pt")
        if dist.is_main:
            write_history(step_dir, history)

    for epoch in range(start_epoch, step.epochs + 1):
        t0 = time.perf_counter()
        train_ds.set_epoch(epoch)
        loader = _loader(train_ds, step.batch_size, True, step.num_workers, step.seed, dist, epoch, mix)
        desc = f"{name} epoch {epoch}/{step.epochs}"
        res = train_epoch(
            model, loader, opt, sched, loss_fn, device, step.max_steps_per_epoch, desc, head=head, dist=dist
        )
        pcc = validate_now(epoch, res.loss, time.perf_counter() - t0, res.skipped)
        meta = {**meta_base, "epoch": epoch, "val_pcc": pcc, "val_loss": history[-1]["val_loss"]}
        # the first trained epoch is always kept (even with an undefined PCC); later ones when better
        improved = (not math.isnan(pcc) and pcc > best_pcc) or not has_best
        if improved:
            best_pcc, has_best, best_epoch = (-math.inf if math.isnan(pcc) else pcc), True, epoch
        if dist.is_main:
            if improved:
                save_checkpoint(best_path, model, metadata=meta)
                log(f"[{name}] new best valid PCC {pcc:.4f} -> {best_path}")
            train_state = {
                "epoch": epoch,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "rng": rng_state(),
                "best_pcc": best_pcc,
                "best_epoch": best_epoch,
                "history": history,
            }
            save_last(last_path, model, meta, train_state)
            write_history(step_dir, history)
        _stop_if_collapsed(name, history, step.collapse_epochs, last_path)
    dist.barrier()
    if best_epoch == 0:
        log(f"[{name}] no epoch beat the starting model (valid PCC {best_pcc:.4f}): best.pt is that model")
    else:
        log(f"[{name}] best valid PCC {best_pcc:.4f} at epoch {best_epoch}")
    return StepResult(name, best_path, best_pcc, history, best_epoch)


# ------------------------------------------------------------------------------------ the recipe
def build_model(cfg: TrainConfig, seed: int) -> SAMOS:
    seed_everything(seed)
    return SAMOS(cfg.model)


CONSTANT_STD = 1e-6
"""Validation predictions with a smaller standard deviation (MOS) count as one constant score."""


def _stop_if_collapsed(name: str, history: list[dict[str, Any]], limit: int | None, last_path: Path) -> None:
    """Raise TrainingError once the last ``limit`` trained epochs each predicted one MOS for every
    validation clip (a dead mean head: no gradient reaches it, so more epochs seldom help)."""
    if limit is None:
        return
    recent = [h for h in history if h["epoch"] > 0][-limit:]
    if len(recent) < limit or not all(h.get("val_pred_std", 1.0) < CONSTANT_STD for h in recent):
        return
    raise TrainingError(
        f"[{name}] stopped after epoch {recent[-1]['epoch']}: the model has predicted one MOS for every "
        f"validation clip for {limit} epochs in a row (its mean head's ReLU units are off for every "
        f"input and get no gradient: such a run seldom recovers). Train again with another "
        f"{name}.seed or a lower {name}.lr; the checkpoints so far are kept ({last_path})"
    )


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
    dist, device = init_distributed(cfg.device)  # ConfigError: a device this machine does not have
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
            trained = bool(results) or bool(step.init_checkpoint)
            results.append(
                run_step(
                    name, step, model, out, device, resume=resume, log=log, dist=dist, from_trained=trained
                )
            )
        if dist.is_main:
            final, _ = load_checkpoint(results[-1].best_path)
            final_path = save_checkpoint(
                out / "final.pt",
                final,
                metadata={
                    "torch_version": str(torch.__version__),
                    "crop_seconds": cfg.steps()[-1][1].crop_seconds,
                    "steps": [
                        {
                            "name": r.name,
                            "best_val_pcc": r.best_pcc,
                            "best_epoch": r.best_epoch,
                            "epochs": len(r.history) - 1,
                        }
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
