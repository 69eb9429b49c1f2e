#!/usr/bin/env bash
# The main job on the embedded defaults: the perception node following the
# production channel of the local model store, which serves the shipped default
# model (models/hades-seedlings), on a replayed synthetic Hades rosbag, with a
# report and pictures of what it published.
#   0. the shipped model published to the local store (var/model-store) and, on a
#      fresh store, promoted to production (the one promotion a script makes: the demo's own store)
#   1. synthetic plates with exact ground truth (seed 42, never used in training)
#   2. a rosbag2 (mcap) of them on /hades/camera/image_raw
#   3. the node, started as the ROS package's launch/perception.launch.py would (the installed
#      executable, via hades-perception run), following the store's production channel
#      through its cache (var/model-cache)
#   4. replay: the bag into the node, every output recorded to a bag and written as
#      prediction files; overlays of masks, tips and certainty
#   5. the node's outputs scored against the ground truth (hades-train score)
#   6. the HTTP API and web app (hades-perception serve, 127.0.0.1), started with the node
#      so its live page holds the node's latest plants, following the same channel; one
#      plate predicted through it. Its URL and a demo key are printed; in a terminal it
#      stays up until Ctrl-C (HADES_DEMO_KEEP_SERVING=0: stop at once).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
OUT="$HADES_DATA_DIR/demo"
rm -rf "$OUT"
mkdir -p "$OUT"
STORE="$HADES_DATA_DIR/model-store"
MODEL=models/hades-seedlings
read -r NAME VERSION < <(python -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['name'], m['version'])" "$MODEL/manifest.json")
echo "==> 0. $NAME $VERSION in the local model store $STORE"
hades-model --store "$STORE" publish "$MODEL"
if ! hades-model --store "$STORE" show "$NAME" production >/dev/null 2>&1; then
  hades-model --store "$STORE" promote "$NAME" "$VERSION" --channel production \
    --reason "demo store: the shipped default model" --by "scripts/demo.sh" --yes
fi
hades-model --store "$STORE" list "$NAME"
echo "==> 1. three synthetic Hades plates (4202x3006) into $OUT/plates"
hades-train synth --out "$OUT/plates" --count 3 --seed 42
echo "==> 2. rosbag2 of them (mcap, 0.5 Hz): $OUT/plates.bag"
hades-perception bag make --images "$OUT/plates/images" --out "$OUT/plates.bag" --rate 0.5
echo "==> 3. starting the perception node (namespace /hades, ROS_DOMAIN_ID=$ROS_DOMAIN_ID)"
# The shipped parameter file (the package's config/perception.yaml) and the default input QoS.
hades-perception run --namespace hades --camera-topic /hades/camera/image_raw \
  --set model_bundle_path:="$ROOT/$MODEL" --set store_url:="$STORE" --set channel:=production --set cache_dir:="$HADES_DATA_DIR/model-cache" \
  > "$OUT/node.log" 2>&1 &
NODE=$!
API_PORT="${HADES_DEMO_PORT:-8000}"
API="http://127.0.0.1:$API_PORT"
KEY=$(hades-perception keys create demo --scopes read,predict,promote --keys "$OUT/api-keys.json" 2>/dev/null | head -1)
hades-perception serve --port "$API_PORT" --keys "$OUT/api-keys.json" --store "$STORE" --model "$NAME" \
  --channel production --bundle "$ROOT/$MODEL" --cache-dir "$HADES_DATA_DIR/model-cache" --live-namespace /hades \
  --work-dir "$OUT/api" > "$OUT/api.log" 2>&1 &
SERVER=$!
trap 'kill $NODE $SERVER 2>/dev/null; wait $NODE $SERVER 2>/dev/null || true' EXIT
echo "==> 4. replaying the bag into the node, recording its outputs"
hades-perception replay "$OUT/plates.bag" --namespace hades --record "$OUT/outputs.bag" \
  --predictions "$OUT/predictions" --report "$OUT/replay.json" --overlays "$OUT/overlays"
echo "==> 5. scoring the node's outputs against the ground truth"
hades-train score --predictions "$OUT/predictions" --truth "$OUT/plates" --out "$OUT/accuracy.json"
echo
python - "$OUT/replay.json" "$OUT/accuracy.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"frames in {s['frames_in']}, out {s['frames_out']}, dropped {s['dropped']}; "
      f"latency p50 {s['latency_ms']['p50']:.0f} ms; model {', '.join(s['model_versions'])}")
a = json.load(open(sys.argv[2]))
print("IoU: " + ", ".join(f"{c} {v['iou']:.3f}" for c, v in a["segmentation"].items() if v["iou"] is not None))
t = a["primary_root_tip"]
print(f"primary root tips: median error {t['median_px']:.1f} px, within 1 mm {t['within_1mm']:.0%}")
PY
echo "==> 6. the HTTP API and web app on $API"
for _ in $(seq 1 120); do
  curl -sf "$API/v2/health/ready" >/dev/null && break
  kill -0 $SERVER 2>/dev/null || { echo "the API did not start; see $OUT/api.log" >&2; exit 1; }
  sleep 0.5
done
curl -sf -H "Authorization: Bearer $KEY" -F "image=@$(ls "$OUT"/plates/images/*.png | head -1)" "$API/v1/predict" \
  | python -c "import json,sys; d=json.load(sys.stdin); print(f\"POST /v1/predict: {len(d['plants'])} plants, model {d['model']['version']}, {d['timing_ms']['total']:.0f} ms\")"
curl -sf -H "Authorization: Bearer $KEY" "$API/v1/live" \
  | python -c "import json,sys; print('GET /v1/live: ' + json.load(sys.stdin)['message'])"
echo
echo "demo done:"
echo "  report:            $OUT/replay.json, accuracy: $OUT/accuracy.json"
echo "  node outputs bag:  $OUT/outputs.bag (plays with ros2 bag play)"
echo "  pictures:          $OUT/overlays/ (masks and tips | certainty)"
echo "  node log:          $OUT/node.log"
echo "  model store:       $STORE (hades-model --store $STORE list $NAME)"
echo "  API and web app:   $API  (key: $KEY; log $OUT/api.log; curl examples in docs/api.md)"
if [[ -t 0 && "${HADES_DEMO_KEEP_SERVING:-1}" != 0 ]]; then
  echo
  echo "The node and the API keep running: open $API in a browser and sign in with the key. Ctrl-C stops both."
  wait $SERVER || true
fi
