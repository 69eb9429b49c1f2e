"""The launch files (for robots with `ros2 launch`) and `hades-perception run` (for
pip-installed ROS) start the same executable with the same name, namespace,
parameters and remapping. The launch files are read as code (AST), since the
launch packages are not installable here."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path
from typing import Any

import yaml

from hades_perception import launching
from hades_perception.params import PARAMS, check
from tests.conftest import REPO

LAUNCH = REPO / "launch" / "perception.launch.py"


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _kw(call: ast.Call) -> dict[str, ast.expr]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def _launch_defaults(tree: ast.AST) -> dict[str, Any]:
    out = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        name = ast.literal_eval(call.args[0])
        out[name] = _kw(call).get("default_value")
    return out


def test_the_launch_file_starts_the_executable_the_package_installs():
    tree = ast.parse(LAUNCH.read_text())
    (node,) = _calls(tree, "Node")
    kw = _kw(node)
    assert ast.literal_eval(kw["package"]) == launching.PACKAGE
    assert ast.literal_eval(kw["executable"]) == launching.EXECUTABLE
    assert ast.literal_eval(kw["name"]) == launching.NODE_NAME
    scripts = tomllib.loads((REPO / "hades_perception" / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts[launching.EXECUTABLE] == "hades_perception.node:main"
    assert launching.node_command(Path("p.yaml"))[2] == "hades_perception.node"


def test_namespace_camera_topic_and_params_file_defaults_agree():
    tree = ast.parse(LAUNCH.read_text())
    defaults = _launch_defaults(tree)
    assert ast.literal_eval(defaults["namespace"]) == launching.DEFAULT_NAMESPACE
    assert ast.literal_eval(defaults["camera_topic"]) == launching.DEFAULT_CAMERA_TOPIC
    parts = [ast.literal_eval(e) for e in defaults["params_file"].args[0].elts[1:]]
    assert "/".join(parts) == launching.DEFAULT_PARAMS
    (node,) = _calls(tree, "Node")
    (remap,) = _kw(node)["remappings"].elts  # type: ignore[attr-defined]
    assert ast.literal_eval(remap.elts[0]) == launching.INPUT_REMAP
    cmd = launching.node_command(Path("x.yaml"), "hades", "/cam")
    assert f"{launching.INPUT_REMAP}:=/cam" in cmd and "__ns:=/hades" in cmd and "__node:=hades_perception" in cmd


def test_the_shipped_parameter_file_sets_every_parameter_with_valid_values():
    values = yaml.safe_load((REPO / "hades_perception" / launching.DEFAULT_PARAMS).read_text())["/**"][
        "ros__parameters"
    ]
    assert set(values) == {p.name for p in PARAMS}, "config/perception.yaml and params.PARAMS differ"
    assert check(values) == []
    assert check({"queue_policy": "keep_all", "qos_depth": 0, "nope": 1}) == [
        "queue_policy: 'keep_all' is not one of ['keep_newest', 'keep_oldest']",
        "qos_depth: 0 outside [1, 100]",
        "unknown parameter 'nope'",
    ]


def test_the_ament_package_installs_the_launch_and_config_files():
    setup = (REPO / "hades_perception" / "setup.py").read_text()
    assert 'glob("launch/*.launch.py")' in setup and 'glob("config/*.yaml")' in setup
    assert (REPO / "hades_perception" / "launch" / "perception.launch.py").resolve() == LAUNCH.resolve()
