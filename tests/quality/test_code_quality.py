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


@pytest.mark.parametrize("package", ["hades_perception", "ros2_ws/src/hades_perception_msgs"])
def test_package_xml_is_format_3_with_name_version_and_build_type(package: str):
    root = ET.parse(REPO / package / "package.xml").getroot()
    assert root.tag == "package" and root.attrib["format"] == "3"
    for field in ("name", "version", "description", "maintainer", "license"):
        assert (root.findtext(field) or "").strip(), f"{package}/package.xml lacks <{field}>"
    assert root.findtext("export/build_type") in {"ament_python", "ament_cmake"}


def test_the_colcon_workspace_holds_both_packages():
    src = REPO / "ros2_ws" / "src"
    assert (src / "hades_perception" / "package.xml").is_file()
    assert (src / "hades_perception_msgs" / "package.xml").is_file()
