"""``samos bench accuracy``: agreement with listeners on the P.835 reference set, in one run.

Reports PCC, SRCC and RMSE per set -- fb48k and wb16k per file, nb8k per CONDITION (mean
prediction over the condition's clips against ``condition_mos``), and the three pooled (78 + 78 + 12
points) -- for:

* ``samos`` and ``samos_ssl_only``: the default recipe (``configs/default.yaml``) cross-validated by
  talker (or by condition): for each fold, step 2 is fine-tuned from the step-1 checkpoint
  (``--pretrained``; without it, from the recipe's initialisation: "step 2 only") on the other
  folds' clips of all three sets and predicts the held-out fold, so no reported clip was trained on.
  ``samos_ssl_only`` is the same recipe and folds with the spectrogram branch disabled (its own
  step-1 checkpoint: ``--pretrained-ssl-only``). See ``samos.bench.cv.cross_validate``.
* peers, evaluated directly (they were not trained on P.835): ``dnsmos_p835`` (OVRL),
  ``dnsmos_p808``, ``distillmos``. Their scales differ from these listening tests, so each peer also
  gets ``rmse_linear`` (and ``pcc_linear``, which only differs from ``pcc`` in the pooled set): the
  RMSE after a per-set linear mapping ``mos ~ a * pred + b`` fitted on the training folds of the same
  CV folds and applied to the held-out fold (nb8k: fitted per clip against its condition MOS).

* ``samos_default``: a samos model FILE scored as is (``--model``; default: the shipped
  ``default.onnx``), whole clip. It was trained on every P.835 clip, so its P.835 figures are
  in-sample (flagged ``in_sample`` and marked ``*``: not accuracy); they serve to fit its calibration.

Every model also gets ``rmse_cal`` / ``pcc_cal``: after a monotonic third-order mapping (ITU-T P.1401,
``samos.bench.calibration``) fitted on the clips each fold may train on (one mapping for all sets, as
a model file carries one) and applied to its held-out clips.

Fold schemes (``--cv``, default ``talker,condition_talker``; ``samos.bench.cv.fold_plan``): talkers
held out; conditions held out; conditions AND talkers held out (no fold trains on a test clip's
talker or condition). Each scheme gets its own block (``schemes``); ``cv``/``models`` repeat the first.

Out of domain (``--vmc24t3``, default ``../shared/data/vmc24t3``): the VoiceMOS 2024 track 3 set,
scored by the models that never trained on it (``samos_default`` and the peers), raw and after the
mapping fitted on ALL of that model's P.835 predictions (so vmc24t3 only checks it). Skipped with a
message when the default folder is absent. Models with an uncertainty (``samos_default``) also get
``uncertainty``: coverage of |error| <= 1 and 2 std and the rank correlation of |error| with std,
raw and calibrated. ``--write-calibrated OUT.onnx`` writes ``--model`` with that P.835 mapping in its
metadata (``samos.export.metadata``).

Peer predictions are cached on disk per (audio SHA-256, peer version) (``--cache``), fold
predictions per (recipe, step-1 checkpoint, folds, audio SHA-256), so a rerun costs seconds.
``--per-clip FILE`` writes every model's per-clip predictions; ``--predictions FILE`` reads such a
file instead of computing its models (e.g. fold fine-tunes run on a GPU machine with ``--device cuda``).
Output: a table, or with ``--json`` one object
``{"sets": {...}, "cv": {...}, "models": {NAME: {SET: {"pcc", "srcc", "rmse", "n", ...}}}, "schemes":
{SCHEME: {"cv", "models"}}, "in_sample": [...], "out_of_domain": {"vmc24t3": {"n", "level", "models": {NAME:
{"pcc", "srcc", "rmse", "pcc_cal", "rmse_cal", "system": {"pcc", "srcc", "rmse", "n", "within_pcc"}}}}},
"calibration": {...}, "uncertainty": {...}}``. ``system``: the VoiceMOS challenges' system-level
figures (each system's mean score against its mean rating) and each system's own per-file PCC, for
sets whose clips name their systems (vmc24t3: 7 enhancement systems).

The code: ``accuracy_metrics`` (report sets, agreement figures), ``accuracy_preds`` (peers,
cross-validated samos folds), ``accuracy_report`` (the report and its table), ``accuracy_io`` (the
per-clip CSVs); this module is the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from samos.audio import AudioError

# also imported from here (scripts/recipe_ablation.py, tests/bench/test_accuracy.py): BenchError,
# evaluation_points, build_report, format_table, _json_safe, read_per_clip, write_per_clip, fold_plan
from samos.bench.accuracy_io import _per_clip_path, read_per_clip, write_per_clip
from samos.bench.accuracy_metrics import BenchError
from samos.bench.accuracy_metrics import evaluation_points as evaluation_points
from samos.bench.accuracy_preds import peer_predictions, samos_cv_predictions
from samos.bench.accuracy_report import _json_safe, _ood_report, _uncertainty, build_report, format_table
from samos.bench.calibration import fit_monotonic_poly3
from samos.bench.cv import SCHEMES, SETS, FoldPlan, P835Error, fold_plan, load_p835
from samos.bench.ood import VMC24T3, OodClip, OodError, default_vmc24t3, load_vmc24t3
from samos.bench.peers import PEERS, PeerCache, PeerError, default_cache_dir, file_sha256
from samos.runtime.modelinfo import ModelFileError

DEFAULT_P835 = "/work/shared/data/p835"

PEER_MODELS: dict[str, tuple[str, str]] = {
    "dnsmos_p835": ("dnsmos", "ovrl"),
    "dnsmos_p808": ("dnsmos", "p808"),
    "distillmos": ("distillmos", "mos"),
}
"""Benchmark model name -> (peer, output)."""
SAMOS_MODELS = ("samos", "samos_ssl_only")
SAMOS_DEFAULT = "samos_default"
"""A samos model file scored as is (trained on all of P.835: in-sample there)."""
ALL_MODELS = (*SAMOS_MODELS, SAMOS_DEFAULT, *PEER_MODELS)
DEFAULT_SCHEMES = ("talker", "condition_talker")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--p835",
        default=os.environ.get("SAMOS_P835", DEFAULT_P835),
        help=f"the P.835 reference folder (default {DEFAULT_P835} or $SAMOS_P835)",
    )
    p.add_argument(
        "--models",
        default=",".join(ALL_MODELS),
        help=f"comma-separated subset of {', '.join(ALL_MODELS)} (default: all)",
    )
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated P.835 sets (default: all three)")
    p.add_argument(
        "--cv",
        default=",".join(DEFAULT_SCHEMES),
        help=f"comma-separated fold schemes, each reported: {', '.join(SCHEMES)} "
        f"(default {','.join(DEFAULT_SCHEMES)}; condition_talker holds out conditions AND talkers)",
    )
    p.add_argument("--condition-folds", type=int, default=4, help="condition groups (condition schemes)")
    p.add_argument(
        "--talker-groups",
        type=int,
        default=3,
        help="talker groups of the condition_talker scheme (default 3)",
    )
    p.add_argument(
        "--model",
        default=None,
        help="the samos model file scored as samos_default (default: the shipped default.onnx)",
    )
    p.add_argument(
        "--vmc24t3",
        default=None,
        help="the VoiceMOS 2024 track 3 folder (default: $SAMOS_VMC24T3 or ../shared/data/vmc24t3 next to "
        "the repository, skipped with a message when absent); 'none' skips it",
    )
    p.add_argument(
        "--write-calibrated",
        default=None,
        metavar="OUT.onnx",
        help="write --model with the monotonic mapping fitted on all its P.835 predictions in its metadata",
    )
    p.add_argument(
        "--config", default="configs/default.yaml", help="the samos recipe (step 2 is cross-validated)"
    )
    p.add_argument(
        "--pretrained",
        default=None,
        help="step-1 checkpoint that 'samos' folds fine-tune from (default: none, step 2 alone)",
    )
    p.add_argument(
        "--pretrained-ssl-only",
        default=None,
        help="step-1 checkpoint of the SSL-only variant (same recipe, spectrogram branch off)",
    )
    p.add_argument("--workers", type=int, default=None, help="data-loader processes for the fold runs")
    p.add_argument(
        "--device", default=None, help="override the recipe's device for the fold runs (cpu, cuda)"
    )
    p.add_argument("--workdir", default="runs/bench_accuracy", help="fold checkpoints and manifests go here")
    p.add_argument("--cache", default=str(default_cache_dir()), help="prediction cache folder")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--out", default=None, help="also write the JSON report to this file")
    p.add_argument(
        "--per-clip", default=None, help="also write every model's per-clip predictions (CSV) here"
    )
    p.add_argument(
        "--predictions",
        action="append",
        default=[],
        help="per-clip predictions CSV (from --per-clip, e.g. of a run on another machine): its models "
        "are taken from it instead of being computed; repeatable",
    )


def run(args: argparse.Namespace) -> int:
    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ALL_MODELS]
    if unknown or not models:
        print(
            f"samos bench accuracy: unknown model(s) {unknown}; choose from {list(ALL_MODELS)}",
            file=sys.stderr,
        )
        return 2
    schemes = [c.strip() for c in args.cv.split(",") if c.strip()]
    if not schemes or any(c not in SCHEMES for c in schemes) or len(set(schemes)) != len(schemes):
        print(
            f"samos bench accuracy: --cv takes some of {', '.join(SCHEMES)}, got {args.cv!r}", file=sys.stderr
        )
        return 2
    if args.predictions and len(schemes) > 1:
        print(
            "samos bench accuracy: --predictions holds the fold predictions of ONE scheme: give one --cv",
            file=sys.stderr,
        )
        return 2
    if args.write_calibrated and SAMOS_DEFAULT not in models:
        print(f"samos bench accuracy: --write-calibrated needs the model {SAMOS_DEFAULT}", file=sys.stderr)
        return 2
    vmc_root = Path(args.vmc24t3) if args.vmc24t3 not in (None, "", "none") else None
    explicit_vmc = args.vmc24t3 not in (None, "", "none")
    if args.vmc24t3 is None:
        vmc_root = default_vmc24t3()
    direct_names = [m for m in models if m == SAMOS_DEFAULT or m in PEER_MODELS]
    ood_block: dict[str, Any] = {}
    try:
        clips = load_p835(args.p835, [s.strip() for s in args.sets.split(",") if s.strip()])
        labels = np.array([c.label for c in clips])
        shas = {str(c.path): file_sha256(c.path) for c in clips}
        cache = PeerCache(args.cache)
        ood: list[OodClip] | None = None
        if vmc_root is not None and direct_names:
            try:
                ood = load_vmc24t3(vmc_root)
            except OodError as e:
                if explicit_vmc:
                    raise BenchError(str(e)) from None
                log(f"samos bench accuracy: out-of-domain set skipped: {e} (give --vmc24t3 DIR)")
                ood_block[VMC24T3] = {"skipped": str(e)}
        elif direct_names:
            ood_block[VMC24T3] = {"skipped": "--vmc24t3 none"}
        ood_shas = {str(c.path): file_sha256(c.path) for c in ood} if ood else {}
        # models that are not trained on P.835 folds: the same predictions under every scheme
        direct: dict[str, np.ndarray] = {}
        direct_ood: dict[str, np.ndarray] = {}
        default_std: dict[str, np.ndarray] = {}
        samos_peer = None
        if SAMOS_DEFAULT in models:
            try:
                samos_peer = PEERS["samos_onnx"](args.model) if args.model else PEERS["samos_onnx"]()  # type: ignore[call-arg]
            except (PeerError, ModelFileError) as e:
                raise BenchError(str(e)) from None
            out = peer_predictions(clips, "samos_onnx", cache, shas, log, peer=samos_peer)
            direct[SAMOS_DEFAULT], default_std["p835"] = out["mos"], out["std"]
            if ood:
                out = peer_predictions(ood, "samos_onnx", cache, ood_shas, log, peer=samos_peer)
                direct_ood[SAMOS_DEFAULT], default_std[VMC24T3] = out["mos"], out["std"]
        outputs: dict[str, dict[str, np.ndarray]] = {}
        outputs_ood: dict[str, dict[str, np.ndarray]] = {}
        for m in models:
            if m in PEER_MODELS:
                peer, out_name = PEER_MODELS[m]
                if peer not in outputs:
                    outputs[peer] = peer_predictions(clips, peer, cache, shas, log)
                    if ood:
                        outputs_ood[peer] = peer_predictions(ood, peer, cache, ood_shas, log)
                direct[m] = outputs[peer][out_name]
                if ood:
                    direct_ood[m] = outputs_ood[peer][out_name]
        blocks: dict[str, dict[str, Any]] = {}
        plans: dict[str, FoldPlan] = {}
        for scheme in schemes:
            plan = fold_plan(clips, scheme, args.condition_folds, args.talker_groups)
            plans[scheme] = plan
            preds: dict[str, np.ndarray] = {}
            for f in args.predictions:
                preds.update({k: v for k, v in read_per_clip(f, clips).items() if k in models})
            for m in models:
                if m in SAMOS_MODELS and m not in preds:
                    preds[m] = samos_cv_predictions(clips, plan, m, args, shas, log)
            preds.update({m: v for m, v in direct.items() if m not in preds})
            preds = {m: preds[m] for m in models}
            if args.per_clip:
                write_per_clip(
                    _per_clip_path(args.per_clip, scheme, len(schemes) > 1), clips, plan.test, preds
                )
            blocks[scheme] = build_report(
                clips,
                plan.test,
                scheme,
                preds,
                mapped_for=[m for m in preds if m in PEER_MODELS],
                train_mask=plan.train_mask,
                calibrated_for=list(preds),
            )
    except (P835Error, BenchError, AudioError, ValueError) as e:
        print(f"samos bench accuracy: {e}", file=sys.stderr)
        return 1
    first = blocks[schemes[0]]
    report: dict[str, Any] = {
        "sets": first["sets"],
        "cv": first["cv"],
        "models": first["models"],
        "schemes": {k: {"cv": b["cv"], "models": b["models"]} for k, b in blocks.items()},
        "in_sample": [SAMOS_DEFAULT] if SAMOS_DEFAULT in models else [],
    }
    if ood:
        ood_block[VMC24T3] = _ood_report(ood, direct, labels, direct_ood)
    if ood_block:
        report["out_of_domain"] = ood_block
    if SAMOS_DEFAULT in models:
        cal = fit_monotonic_poly3(direct[SAMOS_DEFAULT], labels)
        report["calibration"] = {
            SAMOS_DEFAULT: {
                "fitted_on": f"P.835 {','.join(sorted({c.set for c in clips}))}: {len(clips)} clips",
                "samos.calibration": json.loads(cal.to_json()),
            }
        }
        report["uncertainty"] = {
            SAMOS_DEFAULT: _uncertainty(
                clips,
                plans[schemes[0]],
                direct[SAMOS_DEFAULT],
                default_std["p835"],
                ood,
                direct_ood.get(SAMOS_DEFAULT),
                default_std.get(VMC24T3),
            )
        }
        if args.write_calibrated:
            from samos.export.metadata import write_calibration

            assert samos_peer is not None
            dst = write_calibration(samos_peer.path, args.write_calibrated, cal)
            log(f"samos bench accuracy: wrote {dst} with calibration {cal.to_json()}")
    report = _json_safe(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
