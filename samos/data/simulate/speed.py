"""CPU cost of making clips (``python -m samos.data.simulate.speed CONFIG [N] [--start I]``).

Builds one ClipMaker (the catalog, the codecs, the teacher, as a worker does) and times
``ClipMaker.clip(i)`` for N clips with ``time.process_time`` (user + system CPU of this process;
the teacher runs on one thread). Prints the start-up CPU-s and the mean and median CPU-s per clip:
the figures of docs/DATA.md ("Speed"). Nothing is written.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def clip_cpu_seconds(config: str, clips: int, start: int = 0) -> tuple[float, list[float]]:
    """(start-up CPU-s, CPU-s of each clip ``start .. start + clips - 1``)."""
    t0 = time.process_time()
    from samos.data.simulate.config import load_simulate_config
    from samos.data.simulate.corpus import ClipMaker

    gen = ClipMaker(load_simulate_config(config))
    startup = time.process_time() - t0
    per = []
    for i in range(start, start + clips):
        a = time.process_time()
        gen.clip(i)
        per.append(time.process_time() - a)
    return startup, per


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samos.data.simulate.speed", description=__doc__)
    p.add_argument("config", help="a simulate YAML")
    p.add_argument("clips", nargs="?", type=int, default=40)
    p.add_argument("--start", type=int, default=0, help="first clip index")
    args = p.parse_args(argv)
    startup, per = clip_cpu_seconds(args.config, args.clips, args.start)
    print(
        f"start-up {startup:.2f} CPU-s; {len(per)} clips: {np.mean(per):.3f} CPU-s per clip "
        f"(median {np.median(per):.3f}, total {sum(per):.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
