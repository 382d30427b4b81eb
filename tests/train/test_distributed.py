"""Multi-process training: two gloo processes under torchrun (CPU)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from train_helpers import TINY_MODEL

from samos.model.checkpoint import load_checkpoint
from samos.train.distributed import Dist, init_distributed

SYNTH = {"train_items": 32, "valid_items": 16, "seconds": 0.8, "seed": 0}


def test_single_process_is_a_no_op() -> None:
    d, dev = init_distributed("cpu")
    assert d == Dist() and not d.enabled and d.is_main and dev.type == "cpu"
    assert d.all_gather(3) == [3] and d.sum(1.0, 2.0) == [1.0, 2.0]
    d.barrier()


@pytest.mark.slow
def test_torchrun_two_processes_on_gloo(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m samos.train`: shards, gathers all validation items, rank 0 writes."""
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists() and shutil.which("torchrun") is None:
        pytest.skip("torchrun is not installed")
    cfg = {
        "model": TINY_MODEL,
        "device": "cpu",
        "threads": 1,
        "pretrain": {
            "data": {"format": "synthetic", "synthetic": SYNTH},
            "epochs": 1,
            "batch_size": 8,
            "lr": 0.003,
            "crop_seconds": 0.5,
            "cache_dir": "cache",
        },
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    cmd = [
        str(torchrun if torchrun.exists() else "torchrun"),
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "samos.train",
        "--config",
        str(tmp_path / "c.yaml"),
        "--out",
        str(tmp_path / "run"),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 processes" in out.stdout and out.stdout.count("final checkpoint:") == 1
    rows = (tmp_path / "run" / "pretrain" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(","), strict=True))
    assert last["epoch"] == "1" and last["val_n"] == "16"
    load_checkpoint(tmp_path / "run" / "final.pt")
