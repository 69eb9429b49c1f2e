#!/usr/bin/env bash
# Reproduces the shipped default model (models/hades-seedlings) from nothing:
# synthetic plates, half `normal` and half `realistic` (condensation, debris, faint
# young roots, hidden seeds, crops, grey; docs/data.md) -> train -> fine-tune on more
# `realistic` plates -> 24 epochs more -> 12 more with old seedlings weighed up -> export
# (calibrate, verify) -> evaluate on test splits of each preset drawn with seeds never used
# for training -> model card.
#   scripts/train_default_model.sh [OUT_BUNDLE] [CARD]
#   (defaults: models/hades-seedlings, models/MODEL_CARD.md)
# Environment (optional): HADES_MODEL_VERSION, the bundle's version (default: a UTC time
# stamp); HADES_RUN_DIR, where the runs and test reports go (default: a new folder under
# $HADES_DATA_DIR/runs). The release workflow (.github/workflows/release.yml) sets both.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
BUNDLE=${1:-models/hades-seedlings}
CARD=${2:-models/MODEL_CARD.md}
DATA="$HADES_DATA_DIR/datasets/mixed"      # train + val: both presets
TEST_NORMAL="$HADES_DATA_DIR/datasets/synth"
TEST_REALISTIC="$HADES_DATA_DIR/datasets/realistic"
# Larger test splits (40 plates, 200 plants each), added in session 10: the 20-plate ones
# above alone moved by several tips between seeds.
TEST_NORMAL2="$HADES_DATA_DIR/datasets/normal-test2"
TEST_REALISTIC2="$HADES_DATA_DIR/datasets/realistic-test2"
RUN=${HADES_RUN_DIR:-"$HADES_DATA_DIR/runs/default-$(date -u +%Y%m%d-%H%M%S)"}
VERSION_ARGS=()
[[ -z "${HADES_MODEL_VERSION:-}" ]] || VERSION_ARGS=(--name "$(basename "$BUNDLE")" --version "$HADES_MODEL_VERSION")
if [[ ! -d "$DATA/train" ]]; then
  hades-train synth --out "$DATA" --split train --count 32 --seed 1
  hades-train synth --out "$DATA" --split train --count 32 --seed 11 --difficulty realistic
fi
if [[ ! -d "$DATA/val" ]]; then
  hades-train synth --out "$DATA" --split val --count 4 --seed 2
  hades-train synth --out "$DATA" --split val --count 4 --seed 12 --difficulty realistic
fi
[[ -d "$TEST_NORMAL/test" ]]    || hades-train synth --out "$TEST_NORMAL" --split test --count 20 --seed 3
[[ -d "$TEST_REALISTIC/test" ]] || hades-train synth --out "$TEST_REALISTIC" --split test --count 20 --seed 13 --difficulty realistic
[[ -d "$TEST_NORMAL2/test" ]]    || hades-train synth --out "$TEST_NORMAL2" --split test --count 40 --seed 43
[[ -d "$TEST_REALISTIC2/test" ]] || hades-train synth --out "$TEST_REALISTIC2" --split test --count 40 --seed 33 --difficulty realistic
# Fine-tuning data: the same 64 plates and 48 more `realistic` ones (seed 21).
FINETUNE="$HADES_DATA_DIR/datasets/finetune"
if [[ ! -d "$FINETUNE/train" ]]; then
  mkdir -p "$FINETUNE"
  cp -r "$DATA/train" "$FINETUNE/train"
  hades-train synth --out "$FINETUNE" --split train --count 48 --seed 21 --difficulty realistic
fi
# Stage 4's data: those 112 plates and 48 more `realistic` ones from seed 340, whose plate sets
# are mostly old seedlings (10 of its 12 experiments; the preset draws about 42 % old
# plants), where most tips are lost (docs/training.md, session 25).
OLDHEAVY="$HADES_DATA_DIR/datasets/oldheavy"
if [[ ! -d "$OLDHEAVY/train" ]]; then
  mkdir -p "$OLDHEAVY"
  cp -r "$FINETUNE/train" "$OLDHEAVY/train"
  hades-train synth --out "$OLDHEAVY" --split train --count 48 --seed 340 --difficulty realistic
fi
start=$(date +%s)
# 1. From random weights, half `normal` and half `realistic` plates (about 40 min on 2 cores).
hades-train train --data "$DATA" --split train --val-split val --out "$RUN" --config training/configs/default.yaml
# 2. Fine-tuned from its best weights on more `realistic` plates: 12 epochs at a third of the
#    learning rate (about 25 min), the same validation plates, landmark patches drawn kind
#    first (balance_kinds: primary tips as often as lateral tips and seeds).
hades-train train --data "$FINETUNE" --split train --val-data "$DATA" --val-split val --out "$RUN/finetune" \
  --config training/configs/default.yaml --init "$RUN/checkpoints/best.pt" --set epochs=12 --set lr=0.001 \
  --set balance_kinds=true
# 3. Continued from stage 2's weights for 24 more epochs, the same data and settings (about
#    50 min); its last weights were shipped in session 24 and are where stage 4 starts
#    (docs/training.md, sessions 23-24: masks better, tips level; 4 validation plates are
#    too few to pick an epoch by).
hades-train train --data "$FINETUNE" --split train --val-data "$DATA" --val-split val --out "$RUN/finetune24" \
  --config training/configs/default.yaml --init "$RUN/finetune/checkpoints/best.pt" --set epochs=24 --set lr=0.001 \
  --set balance_kinds=true
# 4. 12 epochs more from stage 3's last weights on those 160 plates (about 20 min); its last
#    weights are shipped (session 25: on six dev splits 5 tips more of 800 `realistic`, 3
#    misses left unflagged against 7, root IoU up; shoot IoU down 0.007, sMAPE up 0.8;
#    the same 12 epochs without the old-heavy plates: 3 tips fewer, 6 unflagged).
hades-train train --data "$OLDHEAVY" --split train --val-data "$DATA" --val-split val --out "$RUN/finetune36" \
  --config training/configs/default.yaml --init "$RUN/finetune24/checkpoints/last.pt" --set epochs=12 --set lr=0.001 \
  --set balance_kinds=true
echo "training took $(( $(date +%s) - start )) s"
hades-train export --checkpoint "$RUN/finetune36/checkpoints/last.pt" --data "$DATA" --split val --out "$BUNDLE" --int8 --force \
  "${VERSION_ARGS[@]}"
hades-train evaluate --model "$BUNDLE" --data "$TEST_NORMAL" --split test --out "$RUN/test-report"
hades-train evaluate --model "$BUNDLE" --data "$TEST_REALISTIC" --split test --out "$RUN/test-report-realistic"
hades-train evaluate --model "$BUNDLE" --data "$TEST_NORMAL2" --split test --out "$RUN/test-report-normal2"
hades-train evaluate --model "$BUNDLE" --data "$TEST_REALISTIC2" --split test --out "$RUN/test-report-realistic2"
cp "$RUN/test-report/metrics.json" "$BUNDLE.test-metrics.json"
cp "$RUN/test-report-realistic/metrics.json" "$BUNDLE.test-metrics-realistic.json"
cp "$RUN/test-report-normal2/metrics.json" "$BUNDLE.test-metrics-normal2.json"
cp "$RUN/test-report-realistic2/metrics.json" "$BUNDLE.test-metrics-realistic2.json"
hades-train card --model "$BUNDLE" --report "$BUNDLE.test-metrics.json" \
  --also "realistic=$BUNDLE.test-metrics-realistic.json" \
  --also "normal 2=$BUNDLE.test-metrics-normal2.json" \
  --also "realistic 2=$BUNDLE.test-metrics-realistic2.json" --out "$CARD"
echo "bundle: $BUNDLE; test reports: $RUN/test-report{,-realistic,-normal2,-realistic2}/report.md (normal, realistic, normal 2, realistic 2)"
