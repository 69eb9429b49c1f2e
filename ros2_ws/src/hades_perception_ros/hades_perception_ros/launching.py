"""Starting the node without `ros2 launch`, with what the launch files use.

The names below are the one place for the package, executable, node name, namespace,
camera topic and parameter file: the launch files import them. Where ROS 2 comes from
pip wheels there is no `ros2 launch`; `hades-perception run` starts the same installed
executable (found through the ament index, as `ros2 run` finds it) with the same node
name, namespace, parameter file and remapping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PACKAGE = "hades_perception_ros"
EXECUTABLE = "perception_node"  # console script -> hades_perception_ros.node:main, in lib/<PACKAGE>/
NODE_NAME = "hades_perception"
DEFAULT_NAMESPACE = "hades"
DEFAULT_PARAMS = "config/perception.yaml"  # inside the package; share/hades_perception_ros/config once installed
INPUT_REMAP = "image_raw"  # the node's input topic name, remapped to the camera's
DEFAULT_CAMERA_TOPIC = "/hades/camera/image_raw"


def package_dir() -> Path:
    """The package's source folder (setup.py, config/, launch/)."""
    return Path(__file__).resolve().parent.parent


def installed_executable() -> Path:
    """The node executable colcon installed, where `ros2 run` and launch_ros look:
    <prefix>/lib/<package>/<executable>, the prefix from the ament index."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        prefix = Path(get_package_prefix(PACKAGE))
    except PackageNotFoundError as exc:
        raise FileNotFoundError(
            f"ROS package {PACKAGE} is not installed in AMENT_PREFIX_PATH: build ros2_ws with colcon "
            "and source install/local_setup.bash (scripts/env.sh does)"
        ) from exc
    exe = prefix / "lib" / PACKAGE / EXECUTABLE
    if not exe.is_file():
        raise FileNotFoundError(f"{exe}: the node executable is not installed; rebuild ros2_ws with colcon")
    return exe


def node_command(
    params: Path,
    namespace: str = DEFAULT_NAMESPACE,
    camera_topic: str = DEFAULT_CAMERA_TOPIC,
    extra_remaps: list[str] | None = None,
    log_level: str = "info",
    overrides: list[str] | None = None,
) -> list[str]:
    """The command line `ros2 launch hades_perception perception.launch.py` would run."""
    ns = namespace if namespace.startswith("/") else f"/{namespace}"
    cmd = [
        str(installed_executable()),
        "--ros-args",
        "-r",
        f"__node:={NODE_NAME}",
        "-r",
        f"__ns:={ns}",
        "--params-file",
        str(params),
        "-r",
        f"{INPUT_REMAP}:={camera_topic}",
        "--log-level",
        log_level,
    ]
    for remap in extra_remaps or []:
        cmd += ["-r", remap]
    for item in overrides or []:  # NAME:=VALUE, after the file, so they win
        cmd += ["-p", item]
    return cmd


def run(
    params: Path,
    namespace: str,
    camera_topic: str,
    extra_remaps: list[str],
    log_level: str,
    overrides: list[str] | None = None,
) -> int:
    """Replace this process with the node (signals then reach rclpy directly)."""
    if not params.is_file():
        raise FileNotFoundError(f"{params}: no such parameter file")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    for item in overrides or []:
        if ":=" not in item:
            raise ValueError(f"--set expects NAME:=VALUE, got {item!r}")
    cmd = node_command(params, namespace, camera_topic, extra_remaps, log_level, overrides)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def start_node(
    params: dict[str, object], folder: Path, namespace: str, camera_topic: str, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Write `params` as a ROS 2 parameter file in `folder` and start the node with
    `hades-perception run` in its own process (tests, benchmarks, tools)."""
    import yaml

    path = folder / "node_params.yaml"
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}))
    out = log.open("w") if log else None  # the child keeps its own descriptor
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hades_perception.cli",
                "run",
                "--params",
                str(path),
                "--namespace",
                namespace,
                "--camera-topic",
                camera_topic,
            ],
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
        )
    finally:
        if out:
            out.close()


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Stop a node (or any ROS process) and return its exit code. SIGTERM first: rclpy
    shuts its context down and the DDS participant removes its shared-memory segment
    (256 MB with this project's Fast DDS profile), which SIGKILL would leave behind in
    /dev/shm. SIGKILL only when it has not stopped within `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
