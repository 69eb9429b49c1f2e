#!/usr/bin/env bash
# The main job on the embedded defaults: synthetic Hades plates through the
# shipped default model (models/hades-seedlings), with predictions, overlay
# pictures and a preview of the ground truth to compare against.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
OUT="$HADES_DATA_DIR/demo"
MODEL=models/hades-seedlings
echo "==> generating 3 synthetic Hades plates (4202x3006, seed 42: not a training seed) into $OUT/plates"
hades-train synth --out "$OUT/plates" --count 3 --seed 42
echo "==> ground truth preview: $OUT/preview"
hades-train inspect "$OUT/plates" --out "$OUT/preview"
echo "==> predicting with the shipped default model ($MODEL) into $OUT/predictions"
hades-perception predict "$OUT/plates/images" --model "$MODEL" --out "$OUT/predictions" \
  --providers CPUExecutionProvider --overlay
echo "==> scoring the predictions against the ground truth: $OUT/evaluation"
hades-train evaluate --model "$MODEL" --data "$OUT/plates" --out "$OUT/evaluation" --no-mlflow
echo
echo "demo done:"
echo "  predictions (masks, landmarks JSON, overlays): $OUT/predictions/"
echo "  evaluation report:                            $OUT/evaluation/report.md"
echo "  ground-truth preview:                         $OUT/preview/dataset.md"
