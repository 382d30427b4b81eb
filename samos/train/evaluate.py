"""``samos eval``: agreement of a model with a rated manifest.

``samos eval --csv M.csv [--root R] --checkpoint C.pt | --model M.onnx [--group COLUMN] [--out DIR]``

Prints utterance-level PCC, SRCC, MSE and RMSE (and, with ``--group``, condition-level figures: mean
prediction vs mean label per value of that CSV column). With ``--out``: ``predictions.csv``,
``metrics.json`` and ``scatter.png``. Each clip is scored whole (tiled up to the model's minimum
length) unless ``--crop-seconds`` asks for the training crop. Missing or unreadable files are
skipped and summarised, never fatal. An ONNX model runs through :class:`samos.runtime.Scorer`
without torch.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from samos.audio import RATE_RATIO, SSL_RATE, AudioError, load_audio, model_input, repeat_crop
from samos.data.manifest import FORMATS, Manifest, SkipReport, read_manifests, validate
from samos.errors import EXIT_FAILURE, EXIT_USAGE, one_line, report
from samos.progress import progress as progress_bar
from samos.train.config import check_device
from samos.train.metrics import Agreement, agreement, condition_agreement, condition_means

# (wave16 [1, T], wave48 [1, 3T]) -> (mos, std)
Predict = Callable[[np.ndarray, np.ndarray], tuple[float, float]]


PROG = "samos eval"


class EvalError(ValueError):
    """An evaluation that cannot run (no model, no usable items, unknown group column)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--csv", required=True, nargs="+", type=Path, help="rated manifest(s)")
    parser.add_argument("--root", type=Path, default=None, help="folder the manifest's paths start from")
    parser.add_argument("--format", default="auto", choices=("auto", *FORMATS), help="manifest reader")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="samos checkpoint (.pt, torch)")
    src.add_argument("--model", type=Path, help="ONNX model from `samos export` (torch-free)")
    parser.add_argument(
        "--group", default=None, help="CSV column for condition-level figures (e.g. condition)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write predictions.csv, metrics.json, scatter.png"
    )
    parser.add_argument(
        "--crop-seconds", type=float, default=None, help="repeat-crop each clip to this length"
    )
    parser.add_argument(
        "--device", default="cpu", help="torch device for --checkpoint: cpu, cuda, cuda:N, auto (default cpu)"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")


# ------------------------------------------------------------------------------------ predictors
def checkpoint_predictor(path: Path, device: str = "cpu", threads: int | None = None) -> tuple[Predict, int]:
    """A predictor from a samos checkpoint, and its minimum input length (16 kHz samples)."""
    import torch

    from samos.model.checkpoint import load_checkpoint
    from samos.train.distributed import torch_device

    if threads:
        torch.set_num_threads(threads)
    dev = torch_device(device)  # ConfigError names a device this machine does not have
    model, _ = load_checkpoint(path, map_location=dev)
    device = str(dev)

    @torch.no_grad()
    def predict(w16: np.ndarray, w48: np.ndarray) -> tuple[float, float]:
        mean, var = model(torch.from_numpy(w16).to(device), torch.from_numpy(w48).to(device))
        return float(mean[0]), float(var[0].clamp_min(0).sqrt())

    return predict, int(model.min_samples)


def onnx_predictor(path: Path, threads: int | None = None) -> tuple[Predict, int]:
    """A predictor from an ONNX model file (samos.runtime.Scorer, CPU provider)."""
    try:
        from samos.runtime.scorer import Scorer
    except ImportError as e:
        raise EvalError(f"--model needs samos.runtime and onnxruntime ({e})") from None
    scorer = Scorer(path, providers=("cpu",), threads=threads)

    def predict(w16: np.ndarray, w48: np.ndarray) -> tuple[float, float]:
        out = scorer.score(w16, w48)
        return float(out.mos[0]), float(out.std[0])

    return predict, int(scorer.info.min_samples16)


# ------------------------------------------------------------------------------------- scoring
@dataclass
class Predictions:
    manifest: Manifest
    index: list[int]
    pred: np.ndarray
    std: np.ndarray
    skipped: SkipReport

    @property
    def labels(self) -> np.ndarray:
        return np.array([self.manifest[i].mos for i in self.index], dtype=np.float64)


def _views(
    manifest: Manifest, crop_seconds: float | None, min_samples: int, report: SkipReport
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    for i, item in enumerate(manifest):
        try:
            audio, sr = load_audio(item.path)
            v = model_input(audio, sr)
            if len(v.wave16) == 0:
                raise AudioError(f"{item.path}: too short")
        except AudioError as e:
            report.add("unreadable_at_load", str(item.path), str(e)[:120])
            continue
        n = len(v.wave16)
        length = int(round(crop_seconds * SSL_RATE)) if crop_seconds else max(n, min_samples)
        w16 = repeat_crop(v.wave16, length)
        w48 = repeat_crop(v.wave48, length * RATE_RATIO)
        yield i, w16[None, :], w48[None, :]


def predict_manifest(
    manifest: Manifest,
    predict: Predict,
    min_samples: int,
    crop_seconds: float | None = None,
    progress: bool = True,
) -> Predictions:
    report = SkipReport()
    report.merge(manifest.skipped)
    idx, pred, std = [], [], []
    views = _views(manifest, crop_seconds, min_samples, report)
    for i, w16, w48 in progress_bar(
        views,
        total=len(manifest),
        desc="scoring",
        unit="clip",
        disable=not progress,
        leave=False,
    ):
        try:
            m, s = predict(w16, w48)
        except ValueError as e:  # input the model rejects (e.g. too short for an ONNX profile)
            report.add("rejected_by_model", str(manifest[i].path), str(e)[:120])
            continue
        idx.append(i)
        pred.append(m)
        std.append(s)
    return Predictions(manifest, idx, np.asarray(pred, np.float64), np.asarray(std, np.float64), report)


def group_values(manifest: Manifest, index: list[int], column: str) -> list[str]:
    """The ``column`` value of each scored item (CSV column, or the reader's condition/db)."""
    out = []
    for i in index:
        it = manifest[i]
        if column in it.fields:
            out.append(it.fields[column])
        elif column in ("condition", "db") and getattr(it, column) is not None:
            out.append(str(getattr(it, column)))
        else:
            have = sorted(k for k in it.fields if not k.startswith("_"))
            raise EvalError(
                f"--group {column!r}: no such column for {it.path.name} (columns: {', '.join(have)})"
            )
    return out


# ------------------------------------------------------------------------------------- outputs
def write_predictions(path: Path, p: Predictions, groups: list[str] | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mos", "pred", "pred_std", *(["group"] if groups else [])])
        for k, i in enumerate(p.index):
            it = p.manifest[i]
            w.writerow(
                [
                    str(it.path),
                    f"{it.mos:.6g}",
                    f"{p.pred[k]:.6g}",
                    f"{p.std[k]:.6g}",
                    *([groups[k]] if groups else []),
                ]
            )


def plot_scatter(path: Path, p: Predictions, utt: Agreement, groups: list[str] | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(p.labels, p.pred, s=12, alpha=0.6, label="clips")
    if groups:
        _, mp, mt = condition_means(p.pred, p.labels, groups)
        ax.scatter(mt, mp, s=40, marker="D", color="tab:red", label="condition means")
    lo = float(min(p.labels.min(), p.pred.min(), 1.0))
    hi = float(max(p.labels.max(), p.pred.max(), 5.0))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("rated MOS")
    ax.set_ylabel("predicted MOS")
    ax.set_title(f"PCC {utt.pcc:.3f}  SRCC {utt.srcc:.3f}  RMSE {utt.rmse:.3f}")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(a: Agreement) -> str:
    return f"PCC {a.pcc:.4f}  SRCC {a.srcc:.4f}  MSE {a.mse:.4f}  RMSE {a.rmse:.4f}"


def run(args: argparse.Namespace) -> int:
    """Exit 2 when the command cannot run as given (a manifest, model, checkpoint or device that does
    not exist or is not the right kind), 1 when scoring fails (no item could be scored)."""
    try:
        if args.checkpoint is not None:
            check_device(args.device, "--device")
        if args.threads is not None and args.threads < 1:
            raise EvalError(f"--threads must be >= 1, got {args.threads}")
        manifest = validate(read_manifests(args.csv, args.root, args.format))
        if args.group:
            group_values(manifest, list(range(len(manifest))), args.group)  # EvalError: no such column
        total = len(manifest) + manifest.skipped.total
        if manifest.skipped:
            print(manifest.skipped.summary(of=total), file=sys.stderr)
        if args.checkpoint is not None:
            predict, min_samples = checkpoint_predictor(args.checkpoint, args.device, args.threads)
        else:
            predict, min_samples = onnx_predictor(args.model, args.threads)
    except ValueError as e:  # ConfigError, ManifestError, EvalError, CheckpointError, ModelFileError
        return report(PROG, one_line(e), EXIT_USAGE)
    try:
        if not len(manifest):
            raise EvalError("no usable items to score")
        p = predict_manifest(manifest, predict, min_samples, args.crop_seconds, progress=True)
        new_skips = p.skipped.total - manifest.skipped.total
        if new_skips:
            print(p.skipped.summary(of=total), file=sys.stderr)
        if not p.index:
            raise EvalError("every item failed to load")
        utt = agreement(p.pred, p.labels)
        groups = group_values(manifest, p.index, args.group) if args.group else None
    except ValueError as e:  # EvalError: nothing could be scored
        return report(PROG, one_line(e), EXIT_FAILURE)
    print(f"utterance-level (n={utt.n}): {_fmt(utt)}")
    result: dict[str, object] = {
        "utterance": utt.to_dict(),
        "skipped": p.skipped.to_dict(),
        "source": [str(c) for c in args.csv],
        "model": str(args.checkpoint or args.model),
    }
    if groups is not None:
        con = condition_agreement(p.pred, p.labels, groups)
        print(f"condition-level by {args.group!r} ({con.n} groups): {_fmt(con)}")
        names, mp, mt = condition_means(p.pred, p.labels, groups)
        result["condition"] = {
            "column": args.group,
            **con.to_dict(),
            "groups": {n: {"pred": float(a), "mos": float(b)} for n, a, b in zip(names, mp, mt, strict=True)},
        }
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        write_predictions(args.out / "predictions.csv", p, groups)
        (args.out / "metrics.json").write_text(json.dumps(result, indent=1, default=_json_float))
        plot_scatter(args.out / "scatter.png", p, utt, groups)
        print(
            f"wrote {args.out / 'predictions.csv'}, {args.out / 'metrics.json'}, {args.out / 'scatter.png'}"
        )
    return 0


def _json_float(x: object) -> object:
    if isinstance(x, float) and math.isnan(x):
        return None
    return float(x)  # type: ignore[arg-type]
