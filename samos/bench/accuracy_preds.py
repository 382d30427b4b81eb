"""Per-clip predictions of the models ``samos bench accuracy`` compares: the peers (cached per
file) and the cross-validated samos recipe."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from samos.bench.accuracy_metrics import BenchError
from samos.bench.cv import Clip, FoldPlan
from samos.bench.peers import PEERS, PeerCache, PeerError, predict_files
from samos.runtime.modelinfo import ModelFileError


def peer_predictions(
    clips: Sequence[Clip],
    peer_name: str,
    cache: PeerCache | None,
    shas: dict[str, str],
    log: Callable[[str], None] = lambda s: None,
    peer: Any = None,
) -> dict[str, np.ndarray]:
    """Per-clip outputs of one peer: ``{output: (len(clips),)}``, cached per file SHA-256.

    ``clips``: anything with a ``path``; ``peer``: an already built peer (default: ``PEERS[peer_name]()``).
    """
    if peer is None:
        try:
            peer = PEERS[peer_name]()
        except (PeerError, ModelFileError) as e:
            raise BenchError(str(e)) from None

    def progress(i: int, n: int) -> None:
        if i == n or i % 25 == 0:
            log(f"{peer_name}: {i}/{n}")

    res = predict_files(peer, [c.path for c in clips], cache, shas=shas, progress=progress)
    return {o: np.array([res[str(c.path)][o] for c in clips]) for o in peer.outputs}


def samos_cv_predictions(
    clips: Sequence[Clip],
    plan: FoldPlan,
    model: str,
    args: argparse.Namespace,
    shas: dict[str, str],
    log: Callable[[str], None],
) -> np.ndarray:
    """Cross-validated per-clip predictions of the default recipe (``model``: samos / samos_ssl_only)."""
    from samos.bench.cv import cross_validate  # torch: imported only when a samos model is asked for

    pretrained = args.pretrained if model == "samos" else args.pretrained_ssl_only
    return cross_validate(
        clips,
        plan.test,
        recipe=Path(args.config),
        spectrogram=(model == "samos"),
        pretrained=Path(pretrained) if pretrained else None,
        workdir=Path(args.workdir),
        cache=Path(args.cache),
        shas=shas,
        log=log,
        device=args.device,
        workers=args.workers,
        train_mask=None if plan.scheme in ("talker", "condition") else plan.train_mask,
    )
