#!/usr/bin/env bash
# Runs the whole test suite (lint, types, unit, ROS integration) in the project's
# environment. Extra arguments go to pytest, e.g. scripts/test.sh -k synth
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck disable=SC1091
source scripts/env.sh
# Each test run gets its own DDS domain so parallel runs on one machine do not cross.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( (RANDOM % 100) + 1 ))}"
echo "==> tests (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE)"
set +e
python -m pytest "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
  echo "no tests were collected: that is a failure here" >&2
  exit 1
fi
exit $rc
