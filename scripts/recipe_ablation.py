#!/usr/bin/env python
"""The recipe ablations behind configs/default.yaml (issue 14), on cached SSL features (SSL-only proxy).

Each variant trains the default model's SSL head (Distill-MOS layer 7 features, SSL-Layer-MOS head,
Gaussian head; no spectrogram branch, so that a variant costs minutes, not hours) and reports:

* ``cv``: P.835 predictions under condition+talker-held-out folds (``samos.bench.cv.fold_plan``),
  per set, PCC / SRCC / RMSE (nb8k per condition);
* ``vmc``: vmc24t3 (never trained on) scored by the variant trained on all of P.835 (+ corpus);
* ``simval``: agreement with the call corpus' held-out pseudo-labels: how much of what the teacher
  knew about call degradations that P.835 lacks the variant kept;
* ``cv_uncertainty`` / ``vmc_uncertainty``: calibration of the predicted std (coverage of |error| at 1
  and 2 std, SRCC of |error| with the std), for the Gaussian head's std (``head``) and for that std
  with the disagreement with the teacher's own head added as an epistemic part (``head+teacher``).

Variants: ``--anchor teacher --bound B`` (the teacher's own head plus a bounded correction),
``--sim S`` (a share S of every batch from the corpus: the joint step), ``--pre N`` (N epochs on the
corpus first, then P.835 alone: the two-step recipe), ``--ens K`` (K seeds, epistemic spread),
``--layer K`` (the encoder's layer K of 1..7 instead of 7) or ``--layer mix`` (a learned softmax-weighted
sum of all seven layers, as SUPERB probes do), ``--aux W`` (a second output of the head learns P.835's
human SIG and BAK ratings, weight W in the loss; the corpus clips have none).

    python scripts/recipe_ablation.py features --corpus data/sim48k_calls --out runs/ablation
    python scripts/recipe_ablation.py run --corpus data/sim48k_calls --out runs/ablation --sim 0.5
    python scripts/recipe_ablation.py run --sim 0.5 --layer mix --seed 1 --nocv

Features are whole-clip layer-7 frames (float16), cached in OUT/features_*.pkl (resumable); with
``--layer`` other than 7, all seven layers ``[7, frames, 200]`` in OUT/features_*_layers.pkl.
``--nocv`` skips the P.835 folds (vmc24t3 and the corpus only: one training, for seed sweeps).
``--blend F.csv --blend-col bak --blend-weight W`` labels the corpus with ``(1 - W) mos + W F[bak]``
(a second label source per clip, e.g. DNSMOS P.835's BAK: ``simval`` is then against that label).
"""

from __future__ import annotations

import argparse
import csv
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr
from torch import nn

from samos.audio import load_audio, model_input
from samos.bench.accuracy import evaluation_points
from samos.bench.cv import fold_plan, load_p835
from samos.bench.ood import default_vmc24t3, load_vmc24t3
from samos.model.heads import GaussianHead, SSLLayerHead
from samos.model.ssl.distillmos import DistillMOSEncoder
from samos.model.teacher import TeacherHead
from samos.train.config import load_train_config

CROP = 200  # 4 s of 20 ms frames, the default recipe's crop
MODEL = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "default.yaml").model
P835 = "/work/shared/data/p835"


def corpus_rows(corpus: Path, manifest: str = "manifest.csv") -> list[dict[str, str]]:
    with open(corpus / manifest, newline="") as f:
        return list(csv.DictReader(f))


def features(paths: list[str], out: Path, layers: bool = False) -> dict[str, np.ndarray]:
    """Layer-7 frames ``[frames, 200]`` per file (``layers``: every layer's, ``[7, frames, 200]``),
    cached in ``out`` (a pickle; resumable)."""
    res: dict[str, np.ndarray] = pickle.load(open(out, "rb")) if out.exists() else {}
    todo = [p for p in paths if p not in res]
    if todo:
        enc = DistillMOSEncoder(7).eval()
        seen: list[torch.Tensor] = []
        for layer in enc.layers:
            layer.register_forward_hook(lambda _m, _i, o: seen.append(o[0]))
        t0 = time.time()
        for i, p in enumerate(todo):
            audio, sr = load_audio(p)
            seen.clear()
            with torch.inference_mode():
                enc(torch.from_numpy(model_input(audio, sr).wave16)[None])
            res[p] = (torch.stack(seen) if layers else seen[-1]).numpy().astype(np.float16)
            if (i + 1) % 200 == 0 or i + 1 == len(todo):
                pickle.dump(res, open(out, "wb"))
                print(f"{out.name}: {i + 1}/{len(todo)} in {time.time() - t0:.0f} s", file=sys.stderr)
    return res


class Net(nn.Module):
    def __init__(
        self, anchor: str, bound: float, teacher: TeacherHead, mix: bool = False, aux: bool = False
    ) -> None:
        super().__init__()
        self.mix = nn.Parameter(torch.zeros(7)) if mix else None  # softmax weights of layers 1..7
        self.h = SSLLayerHead(200, MODEL.ssl_head)  # the default model's SSL head and Gaussian head
        self.g = GaussianHead(self.h.out_dim, MODEL.fusion)
        self.anchor, self.bound, self.teacher = anchor, bound, teacher
        self.aux = nn.Linear(self.h.out_dim, 2) if aux else None  # SIG and BAK (--aux)
        if anchor == "teacher":
            nn.init.zeros_(self.g.mu[-1].weight)
            nn.init.zeros_(self.g.mu[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, v, _ = self.parts(x)
        return m, v

    def parts(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mean [B], var [B], SIG and BAK [B, 2])."""
        if self.mix is not None:  # x [B, 7, frames, 200]
            x = (x * torch.softmax(self.mix, 0)[:, None, None]).sum(1)
        z = self.h(x)
        m, v = self.g(z)
        if self.anchor == "teacher":
            m = self.teacher(x) + self.bound * torch.tanh((m - 3.0) / self.bound)
        return m, v, (3.0 + self.aux(z)) if self.aux is not None else z.new_full((len(z), 2), torch.nan)


def p835_sig_bak(clips: list) -> np.ndarray:
    """The listeners' SIG and BAK ``[N, 2]`` of P.835 clips (nb8k: its condition's), from the CSVs."""
    ratings: dict[str, tuple[float, float]] = {}
    for name, sig, bak in (
        ("fb48k.csv", "mos_sig", "mos_bak"),
        ("wb16k.csv", "mos_sig", "mos_bak"),
        ("nb8k_condition_level.csv", "condition_mos_sig", "condition_mos_bak"),
    ):
        with open(Path(P835) / name, newline="") as f:
            for r in csv.DictReader(f):
                ratings[str(Path(P835) / r["path"])] = (float(r[sig]), float(r[bak]))
    return np.array([ratings[str(c.path)] for c in clips], dtype=np.float32)


def crop(f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random ``CROP``-frame span of ``[..., frames, 200]`` (short clips repeated)."""
    n = f.shape[-2]
    if n <= CROP:
        return np.concatenate([f] * -(-CROP // n), axis=-2)[..., :CROP, :]
    s = rng.integers(0, n - CROP + 1)
    return f[..., s : s + CROP, :]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("features", "run"))
    ap.add_argument("--corpus", type=Path, default=Path("data/sim48k_calls"))
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument(
        "--manifest", default="manifest.csv", help="the corpus' manifest in --corpus (with a split column)"
    )
    ap.add_argument("--anchor", choices=("none", "teacher"), default="none")
    ap.add_argument("--bound", type=float, default=1.5)
    ap.add_argument("--sim", type=float, default=0.0, help="share of each batch from the corpus")
    ap.add_argument("--pre", type=int, default=0, help="epochs on the corpus before P.835")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ens", type=int, default=1)
    ap.add_argument("--folds", default="condition_talker")
    ap.add_argument("--layer", default="7", help="encoder layer 1..7, or mix (learned weights of all)")
    ap.add_argument("--nocv", action="store_true", help="skip the P.835 folds")
    ap.add_argument(
        "--blend",
        type=Path,
        help="CSV (path, and the column --blend-col) of a second label source for the corpus clips",
    )
    ap.add_argument("--blend-col", default="bak", help="the --blend column mixed into the corpus label")
    ap.add_argument("--blend-weight", type=float, default=0.5, help="its weight in the corpus label")
    ap.add_argument("--aux", type=float, default=0.0, help="weight of the P.835 SIG/BAK loss (0: off)")
    args = ap.parse_args()
    if args.layer != "mix" and args.layer not in {str(k) for k in range(1, 8)}:
        ap.error(f"--layer must be 1..7 or mix, got {args.layer!r}")
    if args.anchor == "teacher" and args.layer != "7":
        ap.error("--anchor teacher needs --layer 7 (the teacher's head reads layer 7)")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    p8, vm = load_p835(P835), load_vmc24t3(default_vmc24t3())
    rows = corpus_rows(args.corpus, args.manifest)
    corpus_paths = [str(args.corpus / r["path"]) for r in rows]
    layers = args.layer != "7"
    tag = "_layers" if layers else ""
    ev = features(
        [str(c.path) for c in p8] + [str(c.path) for c in vm], args.out / f"features_eval{tag}.pkl", layers
    )
    sf = features(corpus_paths, args.out / f"features_corpus{tag}.pkl", layers)
    if args.what == "features":
        return 0
    if layers and args.layer != "mix":  # one layer of the cached seven
        k = int(args.layer) - 1
        ev, sf = ({p: f[k] for p, f in d.items()} for d in (ev, sf))
    label = {p: float(r["mos"]) for p, r in zip(corpus_paths, rows, strict=True)}
    if args.blend:  # label = (1 - w) teacher label + w second source (e.g. DNSMOS BAK)
        with open(args.blend, newline="") as f:
            other = {str(args.corpus / r["path"]): float(r[args.blend_col]) for r in csv.DictReader(f)}
        w = args.blend_weight
        label = {p: (1 - w) * v + w * other[p] for p, v in label.items()}
    no_aux = np.full(2, np.nan, np.float32)  # items: (features, label, SIG and BAK or NaN)
    pairs = list(zip(corpus_paths, rows, strict=True))
    sim_train = [(sf[p], label[p], no_aux) for p, r in pairs if r["split"] == "train"]
    sim_valid = [(sf[p], label[p], no_aux) for p, r in pairs if r["split"] != "train"]
    teacher = TeacherHead()

    def train1(items: list, epochs: int, lr: float, seed: int, sims: list, net: Net | None = None) -> Net:
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        net = net or Net(args.anchor, args.bound, teacher, mix=args.layer == "mix", aux=args.aux > 0)
        opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.995)
        loss = nn.GaussianNLLLoss()
        for _ in range(epochs):
            net.train()
            order = rng.permutation(len(items))
            for i in range(0, len(order), 16):
                batch = [items[j] for j in order[i : i + 16]]
                if sims and args.sim > 0:
                    k = max(1, int(round(len(batch) * args.sim / (1 - args.sim))))
                    batch = batch + [sims[j] for j in rng.integers(0, len(sims), k)]
                x = torch.from_numpy(np.stack([crop(f, rng) for f, _, _ in batch]).astype(np.float32))
                y = torch.tensor([label for _, label, _ in batch], dtype=torch.float32)
                m, v, sb = net.parts(x)
                total = loss(m, y, v)
                a = torch.from_numpy(np.stack([aux for _, _, aux in batch]))
                rated = ~torch.isnan(a[:, 0])
                if args.aux > 0 and rated.any():
                    total = total + args.aux * ((sb[rated] - a[rated]) ** 2).mean()
                opt.zero_grad()
                total.backward()
                opt.step()
                sched.step()
        return net

    def train(items: list, seed: int) -> list[Net]:
        nets = []
        for e in range(args.ens):
            base = train1(sim_train, args.pre, 1e-3, seed + 100 * e, []) if args.pre > 0 else None
            nets.append(train1(items, args.epochs, args.lr, seed + 1 + 100 * e, sim_train, base))
        return nets

    def predict(nets: list[Net], feats: list[np.ndarray]) -> np.ndarray:
        outs = []
        for net in nets:
            net.eval()
            with torch.no_grad():
                outs.append(
                    [[float(t) for t in net(torch.from_numpy(f.astype(np.float32))[None])] for f in feats]
                )
        o = np.array(outs)  # [K, N, 2] (mean, var)
        mean, aleatoric, epistemic = o[..., 0].mean(0), o[..., 1].mean(0), o[..., 0].var(0)
        return np.stack([mean, np.sqrt(aleatoric + epistemic)], 1)

    def agree(p: np.ndarray, y: np.ndarray) -> list[float]:
        return [
            round(float(pearsonr(p, y)[0]), 3),
            round(float(spearmanr(p, y)[0]), 3),
            round(float(np.sqrt(np.mean((p - y) ** 2))), 3),
        ]

    def teacher_mos(feats: list[np.ndarray]) -> np.ndarray:
        """The teacher's own head on whole-clip layer-7 frames (NaN with ``--layer`` other than 7)."""
        if layers:
            return np.full(len(feats), np.nan)
        with torch.no_grad():
            return np.array([float(teacher(torch.from_numpy(f.astype(np.float32))[None])) for f in feats])

    def calibration(mean: np.ndarray, std: np.ndarray, spread: np.ndarray, y: np.ndarray) -> dict:
        """Coverage at 1 and 2 std and SRCC(|error|, std), for the head's std and for the head's
        std with the disagreement with the teacher added as an epistemic part."""
        err = np.abs(mean - y)
        out = {}
        for name, s in (("head", std), ("head+teacher", np.sqrt(std**2 + spread**2))):
            if np.isnan(s).any():
                continue
            out[name] = {
                "coverage_1std": round(float(np.mean(err <= s)), 3),
                "coverage_2std": round(float(np.mean(err <= 2 * s)), 3),
                "srcc_err_std": round(float(spearmanr(err, s)[0]), 3),
                "std_range": [round(float(s.min()), 2), round(float(s.max()), 2)],
            }
        return out

    p8f = [ev[str(c.path)] for c in p8]
    p8y = np.array([c.label for c in p8])
    p8a = p835_sig_bak(p8)
    res: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    if not args.nocv:
        plan = fold_plan(p8, args.folds)
        pred = np.zeros((len(p8), 2))
        for k in plan.ids:
            mask = plan.train_mask(k)
            nets = train([(p8f[i], p8y[i], p8a[i]) for i in range(len(p8)) if mask[i]], args.seed)
            test = np.flatnonzero(plan.test_mask(k))
            pred[test] = predict(nets, [p8f[i] for i in test])
        res["cv"] = {s: agree(a, b) for s, (a, b) in evaluation_points(p8, pred[:, 0]).items()}
        spread = np.abs(pred[:, 0] - teacher_mos(p8f))
        res["cv_uncertainty"] = calibration(pred[:, 0], pred[:, 1], spread, p8y)  # per file
    nets = train(list(zip(p8f, p8y, p8a, strict=True)), args.seed)
    vy = np.array([c.label for c in vm])
    vf = [ev[str(c.path)] for c in vm]
    vp = predict(nets, vf)
    res["vmc"] = agree(vp[:, 0], vy)
    res["vmc_uncertainty"] = calibration(vp[:, 0], vp[:, 1], np.abs(vp[:, 0] - teacher_mos(vf)), vy)
    if nets[0].mix is not None:
        res["layer_weights"] = [round(float(w), 3) for w in torch.softmax(nets[0].mix.detach(), 0)]
    if sim_valid:
        sp = predict(nets, [f for f, _, _ in sim_valid])[:, 0]
        res["simval"] = agree(sp, np.array([label for _, label, _ in sim_valid]))
        if args.blend:  # also against the teacher's own labels (the manifest's mos)
            teach = [float(r["mos"]) for r in rows if r["split"] != "train"]
            res["simval_teacher"] = agree(sp, np.array(teach))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
