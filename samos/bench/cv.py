"""The P.835 reference set as a list of clips, and its cross-validation folds. Torch-free.

The set (``/work/shared/data/p835``, see its README) has three folders rated in separate tests:
``fb48k`` and ``wb16k`` (78 clips each, per-file MOS) and ``nb8k`` (96 clips rated per CONDITION
only: each clip carries its condition's MOS as a label, and is evaluated at condition level).

Folds never split a talker (or, in the by-condition variant, a condition) across train and test:

* ``talker_folds``: 6 folds. fb48k/wb16k talkers are ``f1 f2 f3 m1 m2 m3`` (file ``c<k>_<talker>.wav``),
  one per fold. nb8k clips are NOIZEUS sentence pairs ``sp<AA><BB>_c<k>_sn0.wav``; NOIZEUS has 30
  sentences read by 6 talkers, 5 each in order (sp01-05, sp06-10, ...), so the talker of sentence s
  is ``nz<(s-1)//5 + 1>``; both sentences of a pair must be by the same talker. nb8k talkers are dealt
  to folds round-robin in sorted order (here nz1..nz4 go to folds 0..3).
* ``condition_folds``: the 13 conditions (c0..c12) sorted by their mean label and dealt
  round-robin to ``n`` folds (default 4), so every fold spans the quality range and each test fold
  holds conditions never seen in training, at every bandwidth. The talkers of the test clips are
  still in training (in other conditions).
* ``condition_talker`` (``fold_plan``): condition groups crossed with talker groups; each fold trains
  only on clips sharing neither its conditions nor its talkers: neither kind of leak.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SETS = ("fb48k", "wb16k", "nb8k")
"""The three P.835 folders, in report order."""
PER_FILE_SETS = ("fb48k", "wb16k")
"""Sets rated per file; nb8k is rated per condition."""
NOIZEUS_SENTENCES_PER_TALKER = 5

_FB_NAME = re.compile(r"^c(\d+)_([fm]\d)\.(?:wav|flac)$")
_NB_NAME = re.compile(r"^sp(\d\d)(\d\d)_c(\d+)_sn\d+\.(?:wav|flac)$")


class P835Error(ValueError):
    """The P.835 folder is missing, incomplete, or holds a file name the folds cannot place."""


@dataclass(frozen=True)
class Clip:
    """One rated clip. ``label`` is its MOS (nb8k: its condition's MOS); ``path`` is absolute."""

    path: Path
    set: str
    label: float
    condition: str
    talker: str

    @property
    def name(self) -> str:
        return f"{self.set}/{self.path.name}"


def talker_of(set_name: str, filename: str) -> str:
    """A P.835 clip's talker from its file name: ``f1``..``m3`` (fb48k/wb16k) or ``nz1``..``nz6`` (nb8k)."""
    if set_name in PER_FILE_SETS:
        m = _FB_NAME.match(filename)
        if not m:
            raise P835Error(f"{set_name}/{filename}: expected a name like c3_f1.wav")
        return m.group(2)
    if set_name == "nb8k":
        m = _NB_NAME.match(filename)
        if not m:
            raise P835Error(f"nb8k/{filename}: expected a NOIZEUS name like sp0102_c3_sn0.wav")
        a, b = ((int(m.group(i)) - 1) // NOIZEUS_SENTENCES_PER_TALKER for i in (1, 2))
        if a != b:
            raise P835Error(
                f"nb8k/{filename}: sentences {m.group(1)} and {m.group(2)} are by different talkers"
            )
        return f"nz{a + 1}"
    raise P835Error(f"unknown P.835 set {set_name!r} (expected one of {SETS})")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise P835Error(f"{path}: missing (is this the P.835 reference folder? see its README)")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_p835(root: str | Path, sets: Sequence[str] = SETS) -> list[Clip]:
    """Read the P.835 reference folder's CSVs; clips in ``sets`` order, then CSV order.

    Raises P835Error for a missing folder, CSV, column or audio file, or an unparsable label.
    """
    root = Path(root)
    if not root.is_dir():
        raise P835Error(f"{root}: no such folder (the P.835 reference set)")
    clips: list[Clip] = []
    for s in sets:
        if s not in SETS:
            raise P835Error(f"unknown P.835 set {s!r} (expected some of {SETS})")
        csv_name, col = (
            (f"{s}.csv", "mos") if s in PER_FILE_SETS else ("nb8k_condition_level.csv", "condition_mos")
        )
        for i, row in enumerate(_read_csv(root / csv_name)):
            try:
                rel, label, cond = row["path"], float(row[col]), row["condition"]
            except KeyError as e:
                raise P835Error(f"{root / csv_name}: no column {e}") from None
            except (TypeError, ValueError):
                raise P835Error(f"{root / csv_name} row {i + 2}: {col} is not a number") from None
            path = root / rel
            if not path.is_file():
                raise P835Error(f"{path}: listed in {csv_name} but missing")
            clips.append(Clip(path=path, set=s, label=label, condition=cond, talker=talker_of(s, path.name)))
    if not clips:
        raise P835Error(f"{root}: no clips")
    return clips


def talker_folds(clips: Sequence[Clip]) -> np.ndarray:
    """Fold index per clip (int array ``(len(clips),)``), one fold per fb48k/wb16k talker (6 folds).

    nb8k talkers are dealt round-robin to those folds. Clips of one talker always share a fold.
    """
    wide = sorted({c.talker for c in clips if c.set in PER_FILE_SETS})
    narrow = sorted({c.talker for c in clips if c.set not in PER_FILE_SETS})
    n = max(len(wide), 1)
    fold = {t: i for i, t in enumerate(wide)} | {t: i % n for i, t in enumerate(narrow)}
    return np.array([fold[c.talker] for c in clips], dtype=np.int64)


def _cond_key(cond: str) -> int:
    m = re.fullmatch(r"c(\d+)", cond)
    return int(m.group(1)) if m else 10**6


def condition_folds(clips: Sequence[Clip], n_folds: int = 4) -> np.ndarray:
    """Fold index per clip: conditions sorted by mean label, dealt round-robin to ``n_folds`` folds."""
    conds = sorted({c.condition for c in clips}, key=_cond_key)
    if not 2 <= n_folds <= len(conds):
        raise ValueError(f"n_folds must be in [2, {len(conds)}] (the number of conditions), got {n_folds}")
    mean = {k: float(np.mean([c.label for c in clips if c.condition == k])) for k in conds}
    order = sorted(conds, key=lambda k: (mean[k], _cond_key(k)))
    fold = {k: i % n_folds for i, k in enumerate(order)}
    return np.array([fold[c.condition] for c in clips], dtype=np.int64)


SCHEMES = ("talker", "condition", "condition_talker")
"""Fold schemes: talkers held out; conditions held out; both held out at once (see ``fold_plan``)."""


def make_folds(
    clips: Sequence[Clip], scheme: str, n_condition_folds: int = 4, n_talker_groups: int = 3
) -> np.ndarray:
    """Test-fold index per clip by ``scheme`` (one of ``SCHEMES``); see ``fold_plan`` for training sets."""
    return fold_plan(clips, scheme, n_condition_folds, n_talker_groups).test


@dataclass(frozen=True)
class FoldPlan:
    """Which clips each fold tests and which it may train on.

    ``test``: fold index per clip (every clip is tested exactly once). ``train``: ``(n_folds, n_clips)``
    boolean, row ``i`` the training clips of fold ``ids[i]``. For ``talker`` and ``condition`` folds
    a fold trains on every clip of the other folds; for ``condition_talker`` it trains only on clips
    that share NEITHER a condition group NOR a talker group with its test clips, so nothing of the
    test clips' talkers and nothing of their conditions (whose nb8k clips carry one label per
    condition) is seen in training.
    """

    scheme: str
    test: np.ndarray
    train: np.ndarray

    @property
    def ids(self) -> list[int]:
        return sorted({int(k) for k in self.test})

    def train_mask(self, k: int) -> np.ndarray:
        return self.train[self.ids.index(int(k))]

    def test_mask(self, k: int) -> np.ndarray:
        return self.test == int(k)


def fold_plan(
    clips: Sequence[Clip], scheme: str, n_condition_folds: int = 4, n_talker_groups: int = 3
) -> FoldPlan:
    """The folds of ``scheme``.

    * ``talker``: ``talker_folds`` (6 folds); ``condition``: ``condition_folds`` (``n_condition_folds``).
    * ``condition_talker``: the ``n_condition_folds`` condition groups crossed with
      ``n_talker_groups`` talker groups (talker fold ``t`` goes to group ``t % n_talker_groups``:
      with 3 groups, f1+m1, f2+m2, f3+m3, each with NOIZEUS talkers). Fold ``(c, t)`` tests the
      clips of condition group ``c`` AND talker group ``t``, and trains on the clips of the other
      condition groups AND other talker groups (about half the set).
    """
    if scheme in ("talker", "condition"):
        test = talker_folds(clips) if scheme == "talker" else condition_folds(clips, n_condition_folds)
        ids = sorted({int(k) for k in test})
        train = np.stack([test != k for k in ids]) if ids else np.zeros((0, len(clips)), bool)
        return FoldPlan(scheme, test, train)
    if scheme == "condition_talker":
        if n_talker_groups < 2:
            raise ValueError(f"n_talker_groups must be >= 2, got {n_talker_groups}")
        cg = condition_folds(clips, n_condition_folds)
        tg = talker_folds(clips) % n_talker_groups
        if len(set(tg.tolist())) < 2:
            raise ValueError("condition_talker folds need at least 2 talker groups among the clips")
        test = cg * n_talker_groups + tg
        ids = sorted({int(k) for k in test})
        train = np.stack([(cg != k // n_talker_groups) & (tg != k % n_talker_groups) for k in ids])
        return FoldPlan(scheme, test, train)
    raise ValueError(f"unknown CV scheme {scheme!r} (expected one of {', '.join(SCHEMES)})")


def linear_map_cv(
    pred: np.ndarray,
    label: np.ndarray,
    folds: np.ndarray,
    groups: np.ndarray,
    train_mask: Callable[[int], np.ndarray] | None = None,
) -> np.ndarray:
    """Cross-validated per-group linear mapping of predictions onto the label scale.

    For each group (a P.835 set) and each fold, ``label ~ a * pred + b`` is fitted by least squares
    on that group's clips in the OTHER folds (or, with ``train_mask``, in ``train_mask(fold)``: see
    ``FoldPlan``) and applied to the held-out fold. A fold whose training part has fewer than 2
    distinct predictions keeps the identity. Returns the mapped predictions.
    """
    pred = np.asarray(pred, dtype=np.float64)
    label = np.asarray(label, dtype=np.float64)
    out = pred.copy()
    for g in np.unique(groups):
        in_g = groups == g
        for k in np.unique(folds[in_g]):
            test = in_g & (folds == k)
            train = in_g & (folds != k if train_mask is None else train_mask(int(k)))
            x, y = pred[train], label[train]
            if len(np.unique(x)) < 2:
                continue
            a, b = np.polyfit(x, y, 1)
            out[test] = a * pred[test] + b
    return out


# ------------------------------------------------------------------------------ cross-validated runs
def write_manifest(clips: Sequence[Clip], path: str | Path) -> Path:
    """A generic rated manifest: ``path`` (absolute), ``mos``, ``condition``, ``set``, ``talker``."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "mos", "condition", "set", "talker"])
        for c in clips:
            w.writerow([str(c.path.resolve()), f"{c.label:.4f}", c.condition, c.set, c.talker])
    tmp.replace(p)
    return p


def predict_clips(
    model: Any, clips: Sequence[Clip], features: Any | None, shas: dict[str, str]
) -> np.ndarray:
    """Whole-clip MOS of a torch SAMOS model for each clip (``(len(clips),)``), in eval mode.

    Frozen SSL features of each whole clip come from (and go to) ``features`` (a
    ``samos.data.cache.FeatureCache``), so every fold and variant sharing the encoder computes them once.
    """
    import torch

    from samos.audio import load_audio, model_input
    from samos.data.cache import encoder_identity, feature_key

    model.eval()
    enc_id = encoder_identity(model.cfg.ssl, model.ssl) if model.ssl is not None else None
    device = next(model.parameters()).device
    out = np.empty(len(clips), dtype=np.float64)
    with torch.no_grad():
        for i, c in enumerate(clips):
            audio, sr = load_audio(c.path)
            mi = model_input(audio, sr)
            w16 = torch.from_numpy(mi.wave16)[None].to(device)
            feats = None
            if model.ssl is not None:

                def compute(w: torch.Tensor = w16) -> np.ndarray:
                    return model.ssl_features(w)[0].float().cpu().numpy()

                if features is not None:
                    key = feature_key(shas.get(str(c.path)) or _sha(c.path), enc_id or {}, 0, len(mi.wave16))
                    arr = features.get_or_compute(key, compute)
                else:
                    arr = compute()
                feats = torch.from_numpy(np.asarray(arr, dtype=np.float32))[None].to(device)
            w48 = torch.from_numpy(mi.wave48)[None].to(device) if model.spec_encoder is not None else None
            mean, _ = model.forward_features(feats, w48)
            out[i] = float(mean[0])
    return out


def _sha(path: Path) -> str:
    from samos.data.cache import file_sha256

    return file_sha256(path)


def cross_validate(
    clips: Sequence[Clip],
    folds: np.ndarray,
    *,
    recipe: Path,
    spectrogram: bool,
    pretrained: Path | None,
    workdir: Path,
    cache: Path,
    shas: dict[str, str],
    log: Callable[[str], None] = print,
    device: str | None = None,
    workers: int | None = None,
    train_mask: Callable[[int], np.ndarray] | None = None,
) -> np.ndarray:
    """Per-clip predictions of the recipe's step 2, each made by a model that never trained on that clip.

    ``train_mask(k)``: the clips fold ``k`` trains on (default: every clip of the other folds; a
    ``FoldPlan.train_mask`` for folds that hold out more than their test clips).

    For each fold: step 2 of ``recipe`` (its ``finetune`` section) is run from ``pretrained`` (the
    step-1 checkpoint; None: from the recipe's initialisation) on the clips of the other folds (all
    sets, nb8k with its condition MOS per clip), with those same clips as its validation set (no
    held-out clip ever steers training or model selection), then it predicts the held-out fold.
    ``spectrogram=False`` runs the same recipe with the spectrogram branch disabled (SSL-only; a
    ``pretrained`` checkpoint must then be SSL-only too). Frozen SSL features are cached once under
    ``cache/features`` for all folds and variants; finished folds are kept in
    ``cache/cv/<run id>.json`` (keyed by clip SHA-256), so an interrupted or repeated run resumes.

    A recipe whose step 2 mixes manifests (``data.mix``) keeps its other lists: the first training
    list (the human ratings) is replaced by the fold's clips, the rest (e.g. the pseudo-labelled
    corpus) and the shares stay, and the validation set is the fold's clips plus the recipe's other
    validation lists.
    """
    from dataclasses import replace

    from samos.config import to_dict
    from samos.data.cache import FeatureCache
    from samos.model.checkpoint import load_checkpoint, read_checkpoint
    from samos.train.config import DataConfig, TrainConfig, load_train_config
    from samos.train.loop import resolve_device, run_training

    cfg = load_train_config(recipe, {"device": device} if device else None)
    if cfg.finetune is None:
        raise ValueError(f"{recipe}: the recipe has no finetune (step 2) section to cross-validate")
    model_cfg = cfg.model if spectrogram else replace(cfg.model, spec=replace(cfg.model.spec, enabled=False))
    pre_sha = None
    if pretrained is not None:
        stored = read_checkpoint(pretrained)["config"]
        if bool(stored.get("spec", {}).get("enabled", True)) != spectrogram:
            kind = "with" if spectrogram else "without"
            raise ValueError(
                f"{pretrained}: this variant needs a step-1 checkpoint {kind} the spectrogram branch"
            )
        pre_sha = _sha(Path(pretrained))
    feat_dir = (Path(cache) / "features").resolve()
    step = replace(
        cfg.finetune,
        init_checkpoint=str(Path(pretrained).resolve()) if pretrained else None,
        cache_dir=str(feat_dir),
        num_workers=cfg.finetune.num_workers if workers is None else workers,
    )
    data = cfg.finetune.data
    extra_train = data.train[1:] if data.mix is not None else ()
    extra_valid = data.valid[1:] if data.mix is not None else ()
    ident = {
        "mix": [list(extra_train), list(extra_valid), list(data.mix or ())],
        "model": to_dict(model_cfg),
        "pretrained": pre_sha,
        "step": {
            k: v
            for k, v in to_dict(step).items()
            if k not in ("data", "init_checkpoint", "cache_dir", "num_workers")
        },
        "clips": [[shas[str(c.path)], float(c.label), int(f)] for c, f in zip(clips, folds, strict=True)],
        "v": 1,
    }
    if train_mask is not None:
        ident["train"] = {
            str(k): np.flatnonzero(train_mask(k)).tolist() for k in sorted({int(f) for f in folds})
        }
    run_id = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    store_path = Path(cache) / "cv" / f"{run_id}.json"
    stored_preds: dict[str, dict[str, float]] = {}
    if store_path.is_file():
        try:
            stored_preds = json.loads(store_path.read_text())
        except (OSError, json.JSONDecodeError):
            log(f"[cv] {store_path}: unreadable, recomputing its folds")
    features = FeatureCache(feat_dir, cfg.finetune.cache_dtype)
    variant = "samos" if spectrogram else "samos_ssl_only"
    for k in sorted({int(f) for f in folds}):
        if str(k) in stored_preds:
            log(f"[cv {variant}] fold {k}: cached ({store_path})")
            continue
        test = [c for c, f in zip(clips, folds, strict=True) if f == k]
        keep = (np.asarray(folds) != k) if train_mask is None else train_mask(k)
        train = [c for c, m in zip(clips, keep, strict=True) if m]
        fold_dir = Path(workdir) / f"{variant}-{run_id}" / f"fold{k}"
        manifest = str(write_manifest(train, fold_dir / "train.csv"))
        fcfg = TrainConfig(
            model=model_cfg,
            device=cfg.device,
            threads=cfg.threads,
            finetune=replace(
                step,
                data=DataConfig(
                    train=(manifest, *extra_train),
                    valid=(manifest, *extra_valid),
                    format="generic",
                    mix=data.mix,
                ),
            ),
        )
        log(
            f"[cv {variant}] fold {k}: fine-tune on {len(train)} clips, predict {len(test)} (talkers "
            f"{' '.join(sorted({c.talker for c in test}))}; conditions "
            f"{' '.join(sorted({c.condition for c in test}, key=_cond_key))})"
        )
        run_training(fcfg, fold_dir, log=log)
        model, _ = load_checkpoint(fold_dir / "final.pt")
        model.to(resolve_device(cfg.device))
        pred = predict_clips(model, test, features, shas)
        stored_preds[str(k)] = {shas[str(c.path)]: float(p) for c, p in zip(test, pred, strict=True)}
        store_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = store_path.with_name(store_path.name + ".tmp")
        tmp.write_text(json.dumps(stored_preds, indent=1))
        tmp.replace(store_path)
    by_sha = {s: p for fold in stored_preds.values() for s, p in fold.items()}
    return np.array([by_sha[shas[str(c.path)]] for c in clips], dtype=np.float64)
