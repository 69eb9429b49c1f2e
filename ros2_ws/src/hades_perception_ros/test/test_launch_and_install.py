"""What a robot needs from this package after `colcon build`: the executable every launch
file names, installed where launch_ros and `ros2 run` look (install/<pkg>/lib/<pkg>/);
the launch and parameter files in share/; a package.xml that declares every ROS
package the code imports. The launch files are also read as code (AST), since the
launch packages are not installable here; they take their names from launching.py."""

from __future__ import annotations

import ast
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from hades_perception_ros import launching
from hades_perception_ros.params import PARAMS, check

PKG = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((PKG / "launch").glob("*.launch.py"))
# ROS packages that are Python modules of the same name (what package.xml must declare).
ROS_PACKAGES = {
    "rclpy",
    "rcl_interfaces",
    "builtin_interfaces",
    "std_msgs",
    "sensor_msgs",
    "diagnostic_msgs",
    "lifecycle_msgs",
    "hades_perception_msgs",
    "launch",
    "launch_ros",
    "ament_index_python",
}


def _install_prefix(package: str = launching.PACKAGE) -> Path:
    """A package's install prefix, from the ament index (as `ros2 run` finds it)."""
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if (Path(prefix) / "share" / "ament_index" / "resource_index" / "packages" / package).is_file():
            return Path(prefix)
    pytest.fail(f"{package} is not in AMENT_PREFIX_PATH: colcon build and source install/local_setup.bash")


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def _value(node: ast.expr) -> Any:
    """A literal, or a name imported from launching (the launch files' one source)."""
    if isinstance(node, ast.Name):
        return getattr(launching, node.id)
    return ast.literal_eval(node)


def _nodes(path: Path) -> list[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for call in _calls(tree, "Node"):
        kw = {k.arg: k.value for k in call.keywords if k.arg}
        out.append((_value(kw["package"]), _value(kw["executable"])))
    return out


def test_every_node_a_launch_file_names_is_installed_where_launch_ros_looks():
    prefix = _install_prefix()
    named = [n for f in LAUNCH_FILES for n in _nodes(f)]
    assert (launching.PACKAGE, launching.EXECUTABLE) in named
    for package, executable in named:
        exe = _install_prefix(package) / "lib" / package / executable
        assert exe.is_file() and os.access(exe, os.X_OK), f"{exe}: not installed (ros2 launch would fail)"
    assert launching.installed_executable() == prefix / "lib" / launching.PACKAGE / launching.EXECUTABLE


def test_the_installed_executable_starts_the_node_and_says_so_for_help(tmp_path: Path):
    """The installed script runs this package's main (it exits on an unknown ROS argument
    only after importing the node module and rclpy: a broken import would show here)."""
    import subprocess

    exe = launching.installed_executable()
    first = exe.read_text().splitlines()[0]
    assert first.startswith("#!") and "python" in first
    r = subprocess.run([str(exe), "--ros-args", "-p", "queue_size:=10000"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "queue_size" in r.stderr + r.stdout


def test_launch_and_parameter_files_are_installed_in_share():
    share = _install_prefix() / "share" / launching.PACKAGE
    for f in LAUNCH_FILES:
        assert (share / "launch" / f.name).is_file(), f"{f.name} not installed"
    assert (share / launching.DEFAULT_PARAMS).is_file()
    assert (share / "package.xml").is_file()


def test_the_launch_files_take_names_and_defaults_from_launching():
    tree = ast.parse((PKG / "launch" / "perception.launch.py").read_text())
    (node,) = _calls(tree, "Node")
    kw = {k.arg: k.value for k in node.keywords if k.arg}
    assert _value(kw["name"]) == launching.NODE_NAME
    defaults = {
        ast.literal_eval(c.args[0]): {k.arg: k.value for k in c.keywords}.get("default_value")
        for c in _calls(tree, "DeclareLaunchArgument")
    }
    assert _value(defaults["namespace"]) == launching.DEFAULT_NAMESPACE  # type: ignore[arg-type]
    assert _value(defaults["camera_topic"]) == launching.DEFAULT_CAMERA_TOPIC  # type: ignore[arg-type]
    (remap,) = kw["remappings"].elts  # type: ignore[attr-defined]
    assert _value(remap.elts[0]) == launching.INPUT_REMAP
    cmd = launching.node_command(Path("x.yaml"), "hades", "/cam")
    assert cmd[0] == str(launching.installed_executable())
    assert f"{launching.INPUT_REMAP}:=/cam" in cmd and "__ns:=/hades" in cmd and f"__node:={launching.NODE_NAME}" in cmd


def test_the_shipped_parameter_file_holds_only_valid_overrides():
    values = yaml.safe_load((PKG / launching.DEFAULT_PARAMS).read_text())["/**"]["ros__parameters"] or {}
    assert check(values) == []
    defaults = {p.name: p.default for p in PARAMS}
    assert not [k for k, v in values.items() if defaults[k] == v], "the YAML repeats a default of params.PARAMS"
    assert check({"queue_policy": "keep_all", "qos_depth": 0, "nope": 1}) == [
        "queue_policy: 'keep_all' is not one of ['keep_newest', 'keep_oldest']",
        "qos_depth: 0 outside [1, 100]",
        "unknown parameter 'nope'",
    ]


def test_package_xml_declares_every_ros_package_the_code_imports():
    root = ET.parse(PKG / "package.xml").getroot()
    assert root.tag == "package" and root.attrib["format"] == "3"
    assert root.findtext("name") == launching.PACKAGE and root.findtext("export/build_type") == "ament_python"
    declared = {e.text for e in root if e.tag in ("depend", "exec_depend", "build_depend")}
    imported: set[str] = set()
    for f in [*(PKG / launching.PACKAGE).glob("*.py"), *LAUNCH_FILES]:
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.Import):
                imported |= {a.name.split(".")[0] for a in n.names}
            elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
                imported.add(n.module.split(".")[0])
    ros = imported & ROS_PACKAGES
    assert ros - declared == set(), f"package.xml lacks {sorted(ros - declared)}"
    assert {"launch", "launch_ros"} <= declared
    assert "torch" not in imported and "hades_training" not in imported
    assert "torch" not in sys.modules, "the ROS tests run without torch"


def test_the_parameter_table_in_docs_is_the_one_params_py_makes():
    from hades_perception_ros.params import markdown_table

    docs = PKG.parents[2] / "docs" / "node.md"
    if not docs.is_file():
        pytest.skip(f"{docs}: the repository's docs are not beside this package")
    text = docs.read_text()
    start = text.index("<!-- parameters: generated")
    table = text[text.index("\n", start) + 1 : text.index("<!-- end of parameters -->")]
    assert table == markdown_table(), "docs/node.md is stale: python -m hades_perception_ros.params"
