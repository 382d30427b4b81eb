"""Where the monitor's CPU goes in one `samos bench stream` run: the thread CPU time spent in the
model's frames graph, its head and the speech detector, per stream-second, and the rest (the
pipeline: decoding, pacing, resampling, windowing, diagnostics, batching, publishing).

    .venv/bin/python scripts/stream_breakdown.py [MODEL [STREAMS]] [--file F] [--json]

MODEL: default, compact or an ONNX file with an incremental pair (default: compact); STREAMS: 16.
The figures are thread CPU time (``time.thread_time``) around each graph call, so they add up with
the process CPU that the bench reports. One run of the incremental path; nothing is changed in it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

DEMO = "samos/assets/demo_call_48k.flac"


def _timed(owner: type, name: str, key: str, spent: Counter[str]) -> None:
    """Wrap ``owner.name`` so that its thread CPU time adds to ``spent[key]``."""
    orig: Callable[..., Any] = getattr(owner, name)

    def timed(self: Any, *args: Any) -> Any:
        t = time.thread_time()
        try:
            return orig(self, *args)
        finally:
            spent[key] += time.thread_time() - t

    setattr(owner, name, timed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="compact")
    p.add_argument("streams", nargs="?", type=int, default=16)
    p.add_argument("--file", default=DEMO, help="audio every stream plays (default: the demo call)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)

    from samos.cli import main as samos_main
    from samos.runtime import incremental, vad

    spent: Counter[str] = Counter()
    _timed(incremental.IncrementalPair, "_frames", "frames_graph", spent)
    _timed(incremental.IncrementalPair, "_head", "head_graph", spent)
    _timed(vad.VadModel, "run", "speech_detector", spent)
    bench = ["bench", "stream", "--model", args.model, "--streams", str(args.streams), "--file", args.file]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = samos_main([*bench, "--json"])
    if rc:
        print(out.getvalue(), end="")
        return rc
    run = json.loads(out.getvalue().strip().splitlines()[-1])
    stream_s = args.streams * run["audio_seconds_per_stream"]
    parts = {k: round(spent[k] / stream_s, 5) for k in ("frames_graph", "head_graph", "speech_detector")}
    total = run["cpu_s_per_stream_s"]
    result = {
        "model": args.model,
        "streams": args.streams,
        "cpu_s_per_stream_s": total,
        **parts,
        "rest": round(total - sum(parts.values()), 5),
        "windows_delivered": run["windows_delivered"],
        "windows_expected": run["windows_expected"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print("CPU-s per stream-second (thread CPU time of each part, one run of the incremental path)")
        for k, v in result.items():
            print(f"{k:>20}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
