"""Multi-process training under ``torchrun``: process group, device per rank, gather helpers.

``torchrun --nproc_per_node N -m samos.train --config ...`` sets ``WORLD_SIZE`` / ``RANK`` /
``LOCAL_RANK``; :func:`init_distributed` then joins the group (NCCL on GPUs, gloo on CPU). Without
those variables everything here is a no-op, so the single-process path is the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from samos.config import ConfigError
from samos.train.config import check_device


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def sum(self, *values: float) -> list[float]:
        """Element-wise sum of ``values`` over ranks."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return [float(v) for v in t.cpu()]


def init_distributed(device: str) -> tuple[Dist, torch.device]:
    """Join the torchrun job if there is one; returns (where we are, the device of this rank).

    ``device``: "auto", "cpu", "cuda" or "cuda:N" (under torchrun a GPU job uses ``cuda:LOCAL_RANK``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), torch_device(device)
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        if device.startswith("cuda"):
            raise ConfigError(cuda_missing(device))
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank=rank, world=world, local_rank=local), dev


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()


def torch_device(name: str) -> torch.device:
    """The torch device for "auto" (cuda if available, else cpu), "cpu", "cuda" or "cuda:N".

    ConfigError for any other name and for a GPU this machine does not have.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(name)
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(cuda_missing(name))
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r}: this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def cuda_missing(name: str) -> str:
    """The message for a CUDA device asked for on a machine (or torch build) without one."""
    why = "this torch build has no CUDA" if torch.version.cuda is None else "torch sees no GPU"
    return f"device {name!r} is not available here ({why}); use cpu or auto"
