#!/usr/bin/env bash
# Prints the ROS apt packages for requirements/ros.txt, one a line, for Dockerfile.jetson:
# the pip wheel names (ros-rclpy, ros-sensor-msgs, ...) are the ROS apt names without the
# distribution (ros-<distro>-rclpy, ...); colcon-common-extensions is python3-colcon-common-extensions.
# A package the distribution does not have (the build-only rosidl/ament split packages
# appeared after humble) is left out and named on stderr; one the runtime needs is checked
# by the image's `entrypoint.sh check` step.
#   docker/jetson-ros-packages.sh [--runtime] DISTRO requirements/ros.txt
# --runtime leaves out what only colcon builds need (colcon, ament_cmake, rosidl generators).
# Needs an apt package index (apt-get update) unless HADES_NO_APT_CHECK=1 (tests).
set -euo pipefail
runtime=0
[[ ${1:-} == --runtime ]] && runtime=1 && shift
distro=${1:?usage: jetson-ros-packages.sh DISTRO REQUIREMENTS}
file=${2:?usage: jetson-ros-packages.sh DISTRO REQUIREMENTS}
while IFS= read -r line || [[ -n $line ]]; do
  name=${line%%#*}
  name=${name//[[:space:]]/}
  [[ -z $name ]] && continue
  case $name in
    ros-*) pkg="ros-$distro-${name#ros-}" ;;
    colcon-common-extensions) pkg=python3-colcon-common-extensions ;;
    *) echo "requirements line '$name': no apt equivalent known; add one to $0" >&2; exit 1 ;;
  esac
  if [[ $runtime == 1 && $pkg =~ (colcon|ament-cmake|ament-package|generators|cmake-module) ]]; then
    continue
  fi
  if [[ ${HADES_NO_APT_CHECK:-0} == 1 ]] || apt-cache show "$pkg" >/dev/null 2>&1; then
    echo "$pkg"
  else
    echo "not in ROS $distro, left out: $pkg" >&2
  fi
done <"$file"
