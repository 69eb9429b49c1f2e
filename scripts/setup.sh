#!/usr/bin/env bash
# Takes a fresh machine to a ready development environment, and does nothing
# that is already done: each stage is skipped when the files it depends on have
# not changed since it last succeeded (a stamp holds their hash).
#
#   1. .venv: Python venv with ROS 2 Kilted wheels, torch (CPU, pinned), the
#      project's packages (editable) and the dev tools
#   2. the CMake path fix the ROS wheels need before colcon can build messages
#   3. Azurite (Azure Blob Storage emulator) from npm, project-local
#   4. the web app (webapp/: npm ci, then a Vite build into hades_perception/api/web),
#      and Debian's Chromium (its browser tests) and shellcheck (apt-get, when run as root)
#   5. colcon build of ros2_ws (hades_perception_msgs, hades_perception_ros)
#
# Usage: scripts/setup.sh [--force]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

STEP="start"
step() { STEP="$*"; printf '\n==> %s\n' "$*"; }
trap 'printf "\nsetup FAILED in step: %s\n(see the output above; fix and re-run scripts/setup.sh)\n" "$STEP" >&2' ERR

# Hash of the named files (missing files hash as empty): a stage's inputs.
inputs_hash() { (cd "$ROOT" && for f in "$@"; do echo "== $f"; cat "$f" 2>/dev/null || true; done) | sha256sum | cut -d' ' -f1; }
is_fresh() { [[ $FORCE == 0 && -f "$1" && "$(cat "$1")" == "$2" ]]; }

START=$(date +%s)

# --- 0. tools the machine must have -------------------------------------------
step "checking system tools"
for tool in python3 cmake gcc g++ node npm; do
  command -v "$tool" >/dev/null || { echo "missing '$tool': install it (Debian: apt-get install python3-venv cmake g++ nodejs npm)" >&2; false; }
done
python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), "ROS 2 Kilted pip wheels need Python 3.11, found %s" % sys.version.split()[0]'

# --- 1. Python environment ---------------------------------------------------
PY_INPUTS=(constraints.txt requirements/ros.txt requirements/dev.txt ros2_ws/src/hades_perception_ros/requirements.txt
           hades_perception/pyproject.toml training/pyproject.toml)
PY_HASH=$(inputs_hash "${PY_INPUTS[@]}")
PY_STAMP="$VENV/.stamp-python"
if is_fresh "$PY_STAMP" "$PY_HASH"; then
  step "python environment: up to date ($VENV)"
else
  step "python environment: creating/updating $VENV"
  [[ -x "$PY" ]] || python3 -m venv "$VENV"
  PIP=("$PY" -m pip install --disable-pip-version-check -c "$ROOT/constraints.txt")
  "${PIP[@]}" --upgrade pip "setuptools>=68,<81" wheel
  step "python environment: torch (CPU build, pinned by constraints.txt)"
  "${PIP[@]}" torch==2.13.0
  step "python environment: ROS 2 Kilted wheels"
  "${PIP[@]}" -r "$ROOT/requirements/ros.txt"
  step "python environment: project packages (editable) and dev tools"
  "${PIP[@]}" -e "$ROOT/hades_perception[azure,metrics,api,tracing,batch]" -e "$ROOT/training" -r "$ROOT/requirements/dev.txt" \
    -r "$ROOT/ros2_ws/src/hades_perception_ros/requirements.txt"
  step "python environment: checking torch is the CPU build and imports work"
  "$PY" - <<'EOF'
import torch, onnxruntime, cv2, mlflow, optuna, rosbags  # noqa: F401
import rclpy  # noqa: F401
print(f"torch {torch.__version__} (cuda: {torch.version.cuda}), onnxruntime {onnxruntime.__version__}, "
      f"opencv {cv2.__version__}, mlflow {mlflow.__version__}, optuna {optuna.__version__}")
EOF
  echo "$PY_HASH" > "$PY_STAMP"
fi

# --- 1b. OpenVINO runtime beside the venv (x86_64) --------------------------------
# onnxruntime-openvino ships the same `onnxruntime` module as onnxruntime, so it cannot
# share the venv with it. It goes in a folder of its own; putting that folder first on
# PYTHONPATH runs a process on it (tests/unit/test_openvino.py, the benchmarks; robots
# install it in place of onnxruntime: docs/engines.md).
OV_DIR="$VENV/openvino-runtime"
if [[ $(uname -m) == x86_64 ]]; then
  OV_PIN=$(grep -E '^onnxruntime-openvino==' "$ROOT/constraints.txt")
  if [[ -f "$OV_DIR/.stamp" && $(cat "$OV_DIR/.stamp") == "$OV_PIN" ]]; then
    step "OpenVINO runtime: up to date ($OV_DIR)"
  else
    step "OpenVINO runtime: $OV_PIN into $OV_DIR"
    rm -rf "$OV_DIR"
    "$PY" -m pip install --disable-pip-version-check -q --no-deps --target "$OV_DIR" "$OV_PIN"
    echo "$OV_PIN" > "$OV_DIR/.stamp"
  fi
fi

# --- 2. CMake path fix for the ROS wheels -------------------------------------
step "ROS wheels: pointing exported CMake include paths at this venv"
"$PY" "$ROOT/scripts/fix_ros_cmake_paths.py" "$VENV"

# --- 3. Azurite ------------------------------------------------------------------
AZ_DIR="$ROOT/tools/azurite"
AZ_HASH=$(inputs_hash tools/azurite/package.json tools/azurite/package-lock.json)
AZ_STAMP="$AZ_DIR/node_modules/.stamp-azurite"
if is_fresh "$AZ_STAMP" "$AZ_HASH" && [[ -x "$AZ_DIR/node_modules/.bin/azurite-blob" ]]; then
  step "azurite: up to date"
else
  step "azurite: npm ci (project-local, tools/azurite)"
  (cd "$AZ_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$AZ_HASH" > "$AZ_STAMP"
fi

# --- 4. the web app and a browser for its tests ----------------------------------
WEB_DIR="$ROOT/webapp"
WEB_OUT="$ROOT/hades_perception/hades_perception/api/web"
mapfile -t WEB_INPUTS < <(cd "$ROOT" && find webapp -path webapp/node_modules -prune -o -type f -print | sort)
WEB_HASH=$(inputs_hash "${WEB_INPUTS[@]}")
WEB_STAMP="$WEB_OUT/.stamp-web"
if is_fresh "$WEB_STAMP" "$WEB_HASH" && [[ -f "$WEB_OUT/index.html" ]]; then
  step "web app: up to date"
else
  step "web app: npm ci and vite build (webapp -> hades_perception/api/web)"
  (cd "$WEB_DIR" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
  echo "$WEB_HASH" > "$WEB_STAMP"
fi
APT_TOOLS=()
command -v chromium >/dev/null || APT_TOOLS+=(chromium)      # the web app's browser tests
command -v shellcheck >/dev/null || APT_TOOLS+=(shellcheck)  # the container and workflow scripts' lint
if [[ ${#APT_TOOLS[@]} == 0 ]]; then
  step "test tools: $(chromium --version 2>/dev/null | head -1), shellcheck $(shellcheck --version | sed -n 2p)"
elif [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  step "test tools: apt-get install ${APT_TOOLS[*]} (Debian's; no browser download)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${APT_TOOLS[@]}" >/dev/null
else
  step "test tools: ${APT_TOOLS[*]} not installed (Debian: apt-get install ${APT_TOOLS[*]}; the tests that need them skip)"
fi

# --- 5. colcon build of ros2_ws ---------------------------------------------------
WS="$ROOT/ros2_ws"
# Sources of the build: everything in the message package, and what ament installs for
# hades_perception_ros (its Python sources are symlinked, so editing them needs no build).
mapfile -t WS_INPUTS < <(cd "$ROOT" && { find ros2_ws/src/hades_perception_msgs -type f; \
  cd ros2_ws/src/hades_perception_ros && ls -d package.xml setup.py setup.cfg resource/* config/* launch/* \
  | sed 's|^|ros2_ws/src/hades_perception_ros/|'; } | sort)
WS_HASH=$(inputs_hash "${WS_INPUTS[@]}" scripts/setup.sh)
WS_STAMP="$WS/install/.stamp-colcon"
if is_fresh "$WS_STAMP" "$WS_HASH"; then
  step "colcon: ros2_ws up to date"
else
  step "colcon: building ros2_ws (hades_perception_msgs, hades_perception_ros)"
  (
    cd "$WS"
    export AMENT_PREFIX_PATH="$VENV" VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH"
    export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
    rm -rf "$WS/build/hades_perception" "$WS/install/hades_perception"  # the package's old name, before the split
    "$VENV/bin/colcon" --log-base "$WS/log" build --symlink-install \
      --cmake-args -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF \
      --event-handlers console_cohesion- summary+
  )
  echo "$WS_HASH" > "$WS_STAMP"
fi

step "checking the messages import with the workspace sourced"
bash -c "source '$ROOT/scripts/env.sh' && python -c 'from hades_perception_msgs.msg import LandmarkArray, Certainty, ModelInfo; import rclpy, hades_perception_ros.node; print(\"messages and node OK\")'"

printf '\nsetup done in %ss. Environment: source scripts/env.sh\n' "$(( $(date +%s) - START ))"
