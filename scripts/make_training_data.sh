#!/usr/bin/env bash
# The training data of both embedded models' recipes (scripts/train_default.sh, scripts/train_compact.sh):
# the human P.835 ratings as one manifest (data/p835/train.csv; nb8k clips carry their condition MOS),
# and the pseudo-labelled 48 kHz call corpus (configs/simulate_calls.yaml), split by its `split` column
# into train.csv and valid.csv.
#
#   scripts/make_training_data.sh   # SAMOS_P835=/work/shared/data/p835 CORPUS=data/sim48k_calls CLIPS=1300 WORKERS=2
#
# Resumable: finished clips are kept (a larger CLIPS adds clips; the first ones stay the same).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
P835=${SAMOS_P835:-/work/shared/data/p835}
CORPUS=${CORPUS:-data/sim48k_calls}
CLIPS=${CLIPS:-1300}
WORKERS=${WORKERS:-2}
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

mkdir -p data/p835
stamp "P.835 manifest from $P835"
"$PY" - "$P835" <<'EOF'
import sys
from samos.bench.cv import load_p835, write_manifest
clips = load_p835(sys.argv[1])
print(f"{len(clips)} clips ->", write_manifest(clips, "data/p835/train.csv"))
EOF

stamp "simulating the call corpus into $CORPUS (configs/simulate_calls.yaml, $CLIPS clips, $WORKERS worker(s))"
"$PY" -m samos.cli data simulate --config configs/simulate_calls.yaml --out "$CORPUS" --clips "$CLIPS" \
  --workers "$WORKERS"
stamp "splitting $CORPUS/manifest.csv by its split column"
"$PY" - "$CORPUS" <<'EOF'
import csv, sys
from pathlib import Path
root = Path(sys.argv[1])
with open(root / "manifest.csv", newline="") as f:
    rows = list(csv.DictReader(f))
if not rows:
    sys.exit(f"{root}/manifest.csv holds no clips")
for name, keep in (("train.csv", {"train"}), ("valid.csv", {"val", "valid"})):
    part = [r for r in rows if r["split"] in keep]
    with open(root / name, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(part)
    print(f"{root / name}: {len(part)} clips")
EOF
