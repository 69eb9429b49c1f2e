#!/usr/bin/env bash
# The containers' one entrypoint: the first argument is the role, the rest go to its command.
#
#   node    hades-perception run   (the node, as launch/perception.launch.py starts it)
#   api     hades-perception serve (the HTTP API and web app, on 0.0.0.0 inside the container)
#   train   hades-train ...        (x86 train image only)
#   mlflow  mlflow server          (x86 train image only; the local stack's tracking server)
#   check   what the image build runs: imports, execution providers, the commands' --help
#   <other> run as a command in the project's environment (e.g. hades-model list)
#
# Configuration (docs/containers.md):
#   HADES_PROFILE          production (default): the node and the API serve signed bundles only
#                          (trusted keys in $HADES_TRUSTED_KEYS_DIR); demo: unsigned bundles, said
#                          in the log at every start
#   HADES_MODEL_STORE      store to follow (folder, azure://..., https blob URL); empty: the
#                          image's bundle only. Credentials come from the environment (AZURE_*).
#   HADES_TRUSTED_KEYS_DIR default /etc/hades/trusted-keys (mount the publisher's *.pub there)
#   HADES_NAMESPACE, HADES_CAMERA_TOPIC   the node's namespace and camera topic
#   ROS_AUTOMATIC_DISCOVERY_RANGE         default LOCALHOST, as everywhere in this project
#   HADES_ENTRYPOINT_DRY_RUN=1            print the command (one argument a line) instead of running it
set -euo pipefail

HADES_HOME=${HADES_HOME:-/opt/hades}
CONFIG_DIR=${HADES_CONFIG_DIR:-$HADES_HOME/docker}
PROFILE=${HADES_PROFILE:-production}
TRUSTED_KEYS_DIR=${HADES_TRUSTED_KEYS_DIR:-/etc/hades/trusted-keys}
role=${1:-help}
[[ $# -gt 0 ]] && shift

log() { printf '[hades-entrypoint] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 78; }  # 78: EX_CONFIG

usage() { sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

# The project's environment, exactly as on a developer's machine (scripts/env.sh): the venv,
# the colcon workspace, DDS on loopback, the shared-memory profile for full-size frames.
# env.sh fixes discovery to LOCALHOST; a deployment that sets another range keeps it.
discovery=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
if [[ -n ${HADES_ROS_SETUP:-} ]]; then  # an apt ROS underlay (the Jetson image): before the workspace
  set +u
  # shellcheck disable=SC1090
  source "$HADES_ROS_SETUP"
  set -u
fi
# shellcheck disable=SC1091
source "$HADES_HOME/scripts/env.sh"
export ROS_AUTOMATIC_DISCOVERY_RANGE=$discovery

# CUDA, cuDNN and TensorRT libraries installed as pip wheels (x86 GPU image) are found
# through LD_LIBRARY_PATH; none on a CPU image or a Jetson (JetPack's are system libraries).
gpu_libs=()
for d in "$VIRTUAL_ENV"/lib/python3*/site-packages/nvidia/*/lib "$VIRTUAL_ENV"/lib/python3*/site-packages/tensorrt_libs; do
  [[ -d $d ]] && gpu_libs+=("$d")
done
if [[ ${#gpu_libs[@]} -gt 0 ]]; then
  LD_LIBRARY_PATH="$(IFS=:; echo "${gpu_libs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi

# Non-comment words of an arguments file (one flag and its value a line; no spaces in values).
read_args() {
  local file=$1 line words
  [[ -f $file ]] || die "$file: no such arguments file"
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    read -ra words <<<"$line"
    args+=("${words[@]}")
  done <"$file"
}

check_profile() {
  case $PROFILE in
    production)
      compgen -G "$TRUSTED_KEYS_DIR/*.pub" >/dev/null \
        || die "profile production: $TRUSTED_KEYS_DIR holds no *.pub key. Mount the model publisher's public key(s) there (docs/containers.md), or set HADES_PROFILE=demo to serve unsigned bundles"
      log "profile production: only bundles signed by a key in $TRUSTED_KEYS_DIR are served" ;;
    demo)
      log "WARNING: profile demo: signature checks are OFF, unsigned bundles are served (never on a robot or a server others use)" ;;
    *) die "HADES_PROFILE=$PROFILE: expected production or demo" ;;
  esac
}

run() {
  if [[ ${HADES_ENTRYPOINT_DRY_RUN:-0} == 1 ]]; then
    printf '%s\n' "$@"
    exit 0
  fi
  exec "$@"
}

args=()
case $role in
  node)
    check_profile
    args=(hades-perception run --params "$CONFIG_DIR/perception.$PROFILE.yaml")
    [[ $PROFILE == production ]] && args+=(--set "trusted_keys_dir:=$TRUSTED_KEYS_DIR")
    [[ -n ${HADES_MODEL_STORE:-} ]] && args+=(--set "store_url:=$HADES_MODEL_STORE")
    [[ -n ${HADES_NAMESPACE:-} ]] && args+=(--namespace "$HADES_NAMESPACE")
    [[ -n ${HADES_CAMERA_TOPIC:-} ]] && args+=(--camera-topic "$HADES_CAMERA_TOPIC")
    run "${args[@]}" "$@" ;;
  api)
    check_profile
    args=(hades-perception serve)
    read_args "$CONFIG_DIR/api.$PROFILE.args"
    [[ $PROFILE == production ]] && args+=(--trusted-keys-dir "$TRUSTED_KEYS_DIR")
    [[ -n ${HADES_MODEL_STORE:-} ]] && args+=(--store "$HADES_MODEL_STORE")
    run "${args[@]}" "$@" ;;
  train)
    command -v hades-train >/dev/null || die "hades-train is not in this image (the train image has it: Dockerfile.x86 target train)"
    run hades-train "$@" ;;
  mlflow)
    command -v mlflow >/dev/null || die "mlflow is not in this image (the train image has it)"
    export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true
    home=${MLFLOW_HOME:-$HADES_DATA_DIR/mlflow}
    run mlflow server --host 0.0.0.0 --port "${MLFLOW_PORT:-5000}" --workers 1 \
      --backend-store-uri "sqlite:///$home/mlflow.db" --artifacts-destination "$home/artifacts" \
      --allowed-hosts "${MLFLOW_ALLOWED_HOSTS:-localhost,localhost:5000,127.0.0.1,127.0.0.1:5000,mlflow,mlflow:5000}" "$@" ;;
  check)
    # What an image build runs as its last step: the environment imports, the commands parse.
    python - <<'PY'
import importlib.util
import onnxruntime
import rclpy  # noqa: F401
import hades_perception.api.app  # noqa: F401
import hades_perception.models.store  # noqa: F401
import hades_perception_ros.node  # noqa: F401
from hades_perception_msgs.msg import Certainty, LandmarkArray, ModelInfo  # noqa: F401
trt = "yes" if importlib.util.find_spec("tensorrt") else "no"
print(f"onnxruntime {onnxruntime.__version__}: {onnxruntime.get_available_providers()}; tensorrt python: {trt}")
PY
    hades-perception --help >/dev/null
    hades-perception run --help >/dev/null
    hades-perception serve --help >/dev/null
    hades-model --help >/dev/null
    if command -v hades-train >/dev/null; then
      hades-train --help >/dev/null
      python -c 'import torch; print(f"torch {torch.__version__} (cuda {torch.version.cuda})")'
    fi
    log "check passed" ;;
  help | -h | --help) usage ;;
  *) run "$role" "$@" ;;
esac
