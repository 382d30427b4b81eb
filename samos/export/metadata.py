"""Rewrite the ``samos.*`` metadata of an existing ONNX model file, without re-exporting it.

Only metadata changes: the graph and weights (and so ``samos.weights_sha256``) stay byte-identical.
Used to ship a calibration fitted after export (``samos bench accuracy --write-calibrated``) or to
state the shortest input the model may score:

    python -m samos.export.metadata IN.onnx --out OUT.onnx [--min-seconds S] [--calibration JSON]

The result is parsed back with ``samos.runtime.modelinfo.parse_metadata`` before it is written, so a
file this tool writes is one the runtime accepts. Needs the ``onnx`` package.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from samos.runtime.modelinfo import (
    KEY_CALIBRATION,
    KEY_MIN_SECONDS,
    Calibration,
    ModelFileError,
    parse_metadata,
)


def rewrite_metadata(src: str | Path, dst: str | Path, updates: dict[str, str]) -> Path:
    """Copy ``src`` to ``dst`` (may be the same file) with ``updates`` merged into its metadata.

    Raises ModelFileError when ``src`` is not a samos model or the updated metadata is invalid.
    """
    import onnx

    src, dst = Path(src), Path(dst)
    try:
        proto = onnx.load(str(src))
    except Exception as e:  # noqa: BLE001 - onnx raises several types for a bad file
        raise ModelFileError(f"{src}: not a loadable ONNX model ({e})") from None
    meta = {p.key: p.value for p in proto.metadata_props}
    meta.update({k: str(v) for k, v in updates.items()})
    inputs = tuple(i.name for i in proto.graph.input)
    parse_metadata(meta, inputs=inputs, source=str(dst))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    onnx.save(proto, str(tmp))
    tmp.replace(dst)
    return dst


def write_calibration(src: str | Path, dst: str | Path, calibration: Calibration) -> Path:
    """``src`` with ``samos.calibration`` set to ``calibration``, written to ``dst``."""
    return rewrite_metadata(src, dst, {KEY_CALIBRATION: calibration.to_json()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m samos.export.metadata", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="samos ONNX model file")
    p.add_argument("--out", type=Path, required=True, help="file to write (may be the input)")
    p.add_argument("--min-seconds", type=float, help="shortest input the model may score, seconds")
    p.add_argument("--calibration", help='samos.calibration JSON, e.g. {"scale": 1, "offset": 0}')
    args = p.parse_args(argv)
    updates: dict[str, str] = {}
    if args.min_seconds is not None:
        updates[KEY_MIN_SECONDS] = repr(float(args.min_seconds))
    if args.calibration is not None:
        try:
            updates[KEY_CALIBRATION] = Calibration.from_json(args.calibration).to_json()
        except (ValueError, KeyError, TypeError, IndexError) as e:
            print(f"samos.export.metadata: bad --calibration: {e}", file=sys.stderr)
            return 2
    if not updates:
        print(
            "samos.export.metadata: nothing to change (give --min-seconds and/or --calibration)",
            file=sys.stderr,
        )
        return 2
    try:
        out = rewrite_metadata(args.model, args.out, updates)
    except ModelFileError as e:
        print(f"samos.export.metadata: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in updates.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
