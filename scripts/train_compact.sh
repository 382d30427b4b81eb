#!/usr/bin/env bash
# The embedded compact student (samos/models/compact.onnx, `--model compact`) from a clean clone:
#   call corpus -> its clips labelled by the default model (`samos data relabel`) -> one joint step on
#   those labels and the human P.835 ratings (configs/compact.yaml), once per seed -> the seeds' models
#   exported as one seed ensemble (the mean of their scores) -> ONNX (+ incremental pair).
#
#   scripts/train_compact.sh              # the whole recipe
#   CLIPS=15000 scripts/train_compact.sh  # a larger corpus (the shipped student used 12000 clips)
#   SEEDS="2" scripts/train_compact.sh   # one model instead of the ensemble (half the cost)
#   BENCH=1 scripts/train_compact.sh      # also the accuracy benchmark of the file, beside the default
#
# Environment: PYTHON (default .venv/bin/python), SAMOS_P835 (default /work/shared/data/p835), CORPUS
# (default data/sim48k_calls), CLIPS (default 12000), SEEDS (the members' training seeds, default
# "2 1"), OUT (default runs/compact), WORKERS (default 2), TEACHER (default
# samos/models/default.onnx), MODEL (the ONNX written, default samos/models/compact.onnx).
# Resumable: the corpus keeps finished clips, labels are not recomputed when their file exists, a
# finished member's training is not rerun (delete OUT to start over).
# A member whose model gives every validation clip one score for 5 epochs stops the script with a
# message (a dead mean head, docs/TRAINING.md; seed 20261204 did that on 12000 clips): give SEEDS
# another seed in its place.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
P835=${SAMOS_P835:-/work/shared/data/p835}
CORPUS=${CORPUS:-data/sim48k_calls}
CLIPS=${CLIPS:-12000}
SEEDS=${SEEDS:-2 1}
OUT=${OUT:-runs/compact}
WORKERS=${WORKERS:-2}
TEACHER=${TEACHER:-samos/models/default.onnx}
BENCH=${BENCH:-0}
MODEL=${MODEL:-samos/models/compact.onnx}
samos() { "$PY" -m samos.cli "$@"; }
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

mkdir -p "$OUT"
T0=$(date +%s)

SAMOS_P835="$P835" CORPUS="$CORPUS" CLIPS="$CLIPS" WORKERS="$WORKERS" PYTHON="$PY" scripts/make_training_data.sh

# The teacher's labels, as `samos score` computes them (4 s windows every 1 s), kept with the teacher's
# hash: labels from another teacher (or another corpus size) are recomputed.
KEY="$("$PY" -c 'import sys; from samos.runtime.modelinfo import file_sha256; print(file_sha256(sys.argv[1])[:12])' "$TEACHER")-$CLIPS"
for part in train valid; do
  labels="$OUT/distill_${part}.csv"
  if [ -f "$labels" ] && [ "$(cat "$labels.key" 2>/dev/null)" = "$KEY" ]; then
    stamp "$labels exists (teacher and corpus unchanged)"
  else
    stamp "labelling $CORPUS/$part.csv with $TEACHER -> $labels"
    samos data relabel "$CORPUS/$part.csv" --model "$TEACHER" --out "$labels"
    echo "$KEY" > "$labels.key"
  fi
done

# One member per seed: configs/compact.yaml with the labels above and the member's seed.
CHECKPOINTS=()
for seed in $SEEDS; do
  RUN="$OUT/seed-$seed"
  mkdir -p "$RUN"
  "$PY" - "$OUT" "$seed" > "$RUN/recipe.yaml" <<'EOF'
import sys
import yaml
out, seed = sys.argv[1], int(sys.argv[2])
cfg = yaml.safe_load(open("configs/compact.yaml"))
for split in ("train", "valid"):
    lists = cfg["finetune"]["data"][split]
    cfg["finetune"]["data"][split] = [p.replace("data/sim48k_calls", out) for p in lists]
cfg["finetune"]["seed"] = seed
print(yaml.safe_dump(cfg, sort_keys=False), end="")
EOF
  if [ -f "$RUN/final.pt" ]; then
    stamp "$RUN/final.pt exists: seed $seed already trained"
  else
    stamp "training seed $seed ($RUN/recipe.yaml) into $RUN"
    samos train --config "$RUN/recipe.yaml" --out "$RUN"
  fi
  CHECKPOINTS+=("$RUN/final.pt")
done

stamp "exporting ${CHECKPOINTS[*]} -> $MODEL (one graph, fp32, parity-checked against torch) and its incremental pair"
samos export --checkpoint "${CHECKPOINTS[@]}" --out "$MODEL" --verify --window-seconds 4 --min-seconds 1.0 \
  --incremental

if [ "$BENCH" = "1" ]; then
  stamp "accuracy of $MODEL beside the default and the peers -> $OUT/accuracy.json"
  samos bench accuracy --p835 "$P835" --model "$MODEL" --models samos_default,distillmos,dnsmos_p835 \
    --cv talker --out "$OUT/accuracy.json"
fi
stamp "done in $(( ($(date +%s) - T0) / 60 )) min: $MODEL"
