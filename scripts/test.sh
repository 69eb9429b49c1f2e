#!/usr/bin/env bash
# Runs the whole test suite in the project's environment, in two pytest processes:
#   1. tests/: lint, types, the core, the model store, training
#   2. the ROS package's tests (ros2_ws/src/hades_perception_ros/test: real nodes over
#      DDS, loopback only), through `colcon test` as a robot developer runs them, in a
#      process where torch cannot be imported, as on a robot
# Extra arguments go to pytest in both, e.g. scripts/test.sh -k swap
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
# Each test run gets its own DDS domain so parallel runs on one machine do not cross.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
echo "==> tests (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE)"
status=0
echo "==> pytest tests"
set +e
python -m pytest tests "$@"
rc=$?
set -e
# 5: nothing collected. With a -k filter that is normal for one suite, not for both.
if [[ $rc == 5 && $# -gt 0 ]]; then rc=0; fi
[[ $rc == 0 ]] || { echo "pytest tests failed (exit $rc)" >&2; status=1; }

echo "==> colcon test hades_perception_ros"
WS="$ROOT/ros2_ws"
RESULTS="$WS/build/hades_perception_ros"
rm -f "$RESULTS/pytest.xml"
set +e
(cd "$WS" && colcon --log-base "$WS/log" test --packages-select hades_perception_ros \
  --return-code-on-test-failure --event-handlers console_direct+ summary+ --pytest-args -ra "$@")
rc=$?
set -e
if [[ $rc != 0 || ! -f "$RESULTS/pytest.xml" ]]; then
  echo "colcon test failed (exit $rc) or wrote no results" >&2
  status=1
elif ! colcon --log-base "$WS/log" test-result --test-result-base "$RESULTS" --verbose; then
  echo "the ROS package's tests failed (colcon test-result above)" >&2
  status=1
fi
exit $status
