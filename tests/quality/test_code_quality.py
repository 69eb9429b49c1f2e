"""Lint, types and ROS package manifests are checked like any other test."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (scripts/setup.sh installs it)")
def test_ruff_finds_nothing():
    r = _run("ruff", "check", ".")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (scripts/setup.sh installs it)")
def test_code_is_formatted():
    r = _run("ruff", "format", "--check", ".")
    assert r.returncode == 0, "run `ruff format .`:\n" + r.stdout + r.stderr


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy not installed (scripts/setup.sh installs it)")
def test_mypy_finds_nothing():
    r = _run("mypy")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("package", ["ros2_ws/src/hades_perception_ros", "ros2_ws/src/hades_perception_msgs"])
def test_package_xml_is_format_3_with_name_version_and_build_type(package: str):
    root = ET.parse(REPO / package / "package.xml").getroot()
    assert root.tag == "package" and root.attrib["format"] == "3"
    for field in ("name", "version", "description", "maintainer", "license"):
        assert (root.findtext(field) or "").strip(), f"{package}/package.xml lacks <{field}>"
    assert root.findtext("export/build_type") in {"ament_python", "ament_cmake"}


def test_the_colcon_workspace_holds_the_node_and_message_packages_and_not_the_core():
    src = REPO / "ros2_ws" / "src"
    assert {p.parent.name for p in src.glob("*/package.xml")} == {"hades_perception_ros", "hades_perception_msgs"}
    assert not (REPO / "hades_perception" / "package.xml").exists(), "the core is a pip package, not a ROS one"


# Optional, lazy imports the core may make: the ROS commands of `hades-perception` and the
# API's live feed of a running node where the ROS package is installed, and torch's GPU
# name where TensorRT runs without nvidia-smi.
OPTIONAL_IN_CORE = {
    ("cli.py", "hades_perception_ros"),
    ("live.py", "hades_perception_ros"),
    ("tensorrt_engine.py", "torch"),
}


def test_the_core_imports_neither_rclpy_nor_torch_nor_training():
    import ast

    banned = {"rclpy", "torch", "hades_training", "hades_perception_ros", "hades_perception_msgs"}
    for f in (REPO / "hades_perception" / "hades_perception").rglob("*.py"):
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.Import):
                names = [a.name for a in n.names]
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                names = [n.module]
            else:
                continue
            for bad in {x.split(".")[0] for x in names} & banned:
                assert (f.name, bad) in OPTIONAL_IN_CORE, f"{f.relative_to(REPO)}:{n.lineno} imports {bad}"
