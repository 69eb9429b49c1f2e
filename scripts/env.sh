# Source this file to work in the project's environment:
#   source scripts/env.sh
# It activates .venv, sources the colcon workspace, and keeps every ROS process
# on this machine (DDS discovery on loopback, large frames over shared memory).
_hades_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The ROS setup scripts read unset variables: allow that while sourcing them.
_hades_nounset=0; [[ $- == *u* ]] && _hades_nounset=1 && set +u

# shellcheck disable=SC1091
source "$_hades_root/.venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
if [[ -f "$_hades_root/ros2_ws/install/local_setup.bash" ]]; then
  # shellcheck disable=SC1091
  source "$_hades_root/ros2_ws/install/local_setup.bash"
fi

# ROS 2 traffic stays on this machine. Kilted ignores ROS_LOCALHOST_ONLY.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# Full-size Hades frames (36 MB RGB) need a big shared-memory segment.
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_hades_root/ros2_ws/src/hades_perception_ros/config/fastdds_shm.xml}"
# Project data (MLflow store, model store, caches) lives in var/ unless told otherwise.
export HADES_DATA_DIR="${HADES_DATA_DIR:-$_hades_root/var}"
export MLFLOW_DISABLE_TELEMETRY=true
[[ $_hades_nounset == 1 ]] && set -u
unset _hades_root _hades_nounset
