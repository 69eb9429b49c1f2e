#!/usr/bin/env bash
# Reproduces the shipped default model (models/hades-seedlings) from nothing:
# synthetic plates -> train -> export (calibrate, verify) -> evaluate on a test
# split drawn with a seed never used for training -> model card.
#   scripts/train_default_model.sh [OUT_BUNDLE]   (default: models/hades-seedlings)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/setup.sh
# shellcheck disable=SC1091
source scripts/env.sh
BUNDLE=${1:-models/hades-seedlings}
DATA="$HADES_DATA_DIR/datasets/synth"
RUN="$HADES_DATA_DIR/runs/default-$(date -u +%Y%m%d-%H%M%S)"
[[ -d "$DATA/train" ]] || hades-train synth --out "$DATA" --split train --count 48 --seed 1
[[ -d "$DATA/val" ]]   || hades-train synth --out "$DATA" --split val   --count 8  --seed 2
[[ -d "$DATA/test" ]]  || hades-train synth --out "$DATA" --split test  --count 20 --seed 3
start=$(date +%s)
hades-train train --data "$DATA" --split train --val-split val --out "$RUN" --config training/configs/default.yaml
echo "training took $(( $(date +%s) - start )) s"
hades-train export --checkpoint "$RUN/checkpoints/best.pt" --data "$DATA" --split val --out "$BUNDLE" --int8 --force
hades-train evaluate --model "$BUNDLE" --data "$DATA" --split test --out "$RUN/test-report"
hades-train card --model "$BUNDLE" --report "$RUN/test-report/metrics.json" --out models/MODEL_CARD.md
echo "bundle: $BUNDLE; test report: $RUN/test-report/report.md"
