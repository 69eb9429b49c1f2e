#!/usr/bin/env bash
# Runs the whole test suite in the project's environment, in two pytest processes:
#   1. tests/: lint, types, the core, the model store, training
#   2. ros2_ws/src/hades_perception_ros/test: the ROS package (real nodes over DDS,
#      loopback only), in a process where torch cannot be imported, as on a robot
# Extra arguments go to both, e.g. scripts/test.sh -k swap
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
# Each test run gets its own DDS domain so parallel runs on one machine do not cross.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
echo "==> tests (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE)"
status=0
for suite in tests ros2_ws/src/hades_perception_ros/test; do
  echo "==> pytest $suite"
  set +e
  python -m pytest "$suite" "$@"
  rc=$?
  set -e
  # 5: nothing collected. With a -k filter that is normal for one suite, not for both.
  if [[ $rc == 5 && $# -gt 0 ]]; then rc=0; fi
  if [[ $rc != 0 ]]; then
    echo "pytest $suite failed (exit $rc)" >&2
    status=1
  fi
done
exit $status
