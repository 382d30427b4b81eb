"""What a step leaves on disk besides ``best.pt``: ``metrics.csv``/``metrics.json``, ``curves.png``, and
``last.pt`` with the state ``--resume`` needs (optimizer, scheduler, RNG states, history)."""

from __future__ import annotations

import csv
import json
import os
import random
from pathlib import Path
from typing import Any

import torch

from samos.model.checkpoint import save_checkpoint
from samos.model.samos_model import SAMOS


def write_history(step_dir: Path, history: list[dict[str, Any]]) -> None:
    """``metrics.csv``, ``metrics.json`` and ``curves.png`` (learning curves) of one step."""
    if not history:
        return
    cols = list(dict.fromkeys(k for h in history for k in h))  # a resumed run may log more columns
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


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
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
