"""Rewrite the wheel builder's Python paths in the ROS wheels' exported CMake files.

The ROS 2 pip wheels were built under /opt/python/cp311-cp311 and their exported
CMake config files name that interpreter's include directories. colcon cannot
build message packages against them until those paths point at this venv's
Python headers and NumPy headers. Idempotent: files already fixed are untouched.

Usage: python scripts/fix_ros_cmake_paths.py VENV
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import numpy

BUILDER_PREFIX = "/opt/python/cp311-cp311"
BUILDER_PY_INCLUDE = f"{BUILDER_PREFIX}/include/python3.11"
BUILDER_NUMPY_INCLUDE = f"{BUILDER_PREFIX}/lib/python3.11/site-packages/numpy/_core/include"


def main(venv: Path) -> int:
    replacements = {
        BUILDER_NUMPY_INCLUDE: numpy.get_include(),
        BUILDER_PY_INCLUDE: sysconfig.get_paths()["include"],
    }
    changed = 0
    for path in (venv / "share").rglob("*.cmake"):
        text = path.read_text(errors="surrogateescape")
        if BUILDER_PREFIX not in text:
            continue
        for old, new in replacements.items():
            text = text.replace(old, new)
        path.write_text(text, errors="surrogateescape")
        changed += 1
    print(f"rewrote builder paths in {changed} CMake file(s) under {venv / 'share'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
