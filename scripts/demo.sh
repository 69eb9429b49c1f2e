#!/usr/bin/env bash
# The main job on the embedded defaults. Today: generate synthetic Hades plates
# with exact ground truth and write a preview (overlays + figures) of them.
# Later stages (node, replay, report) extend this script.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
OUT="$HADES_DATA_DIR/demo"
echo "==> generating 3 synthetic Hades plates (4202x3006, seed 42) into $OUT/plates"
hades-train synth --out "$OUT/plates" --count 3 --seed 42
echo "==> preview: overlays of masks and landmarks, figures to compare with the Hades facts"
hades-train inspect "$OUT/plates" --out "$OUT/preview"
echo
echo "demo done: open $OUT/preview/dataset.md (pictures in $OUT/preview/overlays/)"
