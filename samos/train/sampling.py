"""Which training items an epoch visits: every item once, or a mix of manifests by share.

``data.mix`` gives each training manifest a share of every batch on average (for example P.835 and
a pseudo-labelled simulated corpus half and half in step 2). One epoch then draws as many items as
the first manifest holds divided by its share, so the first manifest (the human ratings) is seen
about once per epoch; items are drawn with replacement inside each manifest, seeded by
``(seed, epoch)`` so that resuming repeats the same order, and dealt to distributed ranks in turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class MixSampler(Sampler[int]):
    """Indices into the concatenation of manifests of sizes ``sizes``, drawn by ``shares``.

    ``sizes``: items per manifest, in concatenation order; ``shares``: their mix weights (any
    positive scale). The epoch length is ``ceil(sizes[0] / share[0])`` after normalising the shares,
    rounded up to a multiple of ``world`` and split across the ranks (rank ``rank`` takes every
    ``world``-th index), so every rank runs the same number of batches.
    """

    def __init__(
        self, sizes: Sequence[int], shares: Sequence[float], seed: int, *, rank: int = 0, world: int = 1
    ) -> None:
        if len(sizes) != len(shares):
            raise ValueError(f"data.mix gives {len(shares)} shares for {len(sizes)} training manifests")
        if any(s <= 0 for s in shares):
            raise ValueError(f"data.mix shares must be > 0, got {list(shares)}")
        empty = [i for i, n in enumerate(sizes) if n <= 0]
        if empty:
            raise ValueError(f"training manifest #{empty[0] + 1} of the mix has no usable items")
        total = float(sum(shares))
        self.sizes = [int(n) for n in sizes]
        self.probs = np.array(shares, dtype=np.float64) / total
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        length = int(np.ceil(self.sizes[0] / self.probs[0]))
        self.length = -(-length // world) * world
        self.seed, self.rank, self.world, self.epoch = seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _draw(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        which = rng.choice(len(self.sizes), size=self.length, p=self.probs)
        within = rng.random(self.length)
        sizes = np.array(self.sizes)[which]
        return self.offsets[which] + np.minimum((within * sizes).astype(np.int64), sizes - 1)

    def __iter__(self) -> Iterator[int]:
        return iter(int(i) for i in self._draw()[self.rank :: self.world])

    def __len__(self) -> int:
        return self.length // self.world
