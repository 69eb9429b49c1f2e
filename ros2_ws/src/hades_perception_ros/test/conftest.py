"""Fixtures of the ROS package's tests, which run as a robot would: torch cannot be imported.

A robot image has no torch and no training package, so these tests use the committed
test data (test/data, written by scripts/make_test_data.py): a tiny exported bundle
and two quarter-size plates with ground truth. Importing torch raises ImportError in
this pytest process and in every process it starts (the nodes), so a dependency on
torch fails here, not on the robot. They share the repository's test helpers (Azurite,
bundle versions) from tests/, found from the repository root.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
REPO = HERE.parents[3]  # <repo>/ros2_ws/src/hades_perception_ros/test

if "torch" in sys.modules:
    raise RuntimeError(
        "torch was imported before the ROS tests started: run them in their own pytest process "
        "(scripts/test.sh does), so that they prove the node needs no torch"
    )
_BLOCKER = Path(tempfile.mkdtemp(prefix="no-torch-")) / "torch"
_BLOCKER.mkdir()
(_BLOCKER / "__init__.py").write_text(
    'raise ImportError("torch is blocked in the ROS package tests: a robot has no torch")\n'
)
sys.path.insert(0, str(_BLOCKER.parent))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_BLOCKER.parent), os.environ.get("PYTHONPATH")]))
if (REPO / "tests" / "azurite.py").is_file():
    sys.path.insert(1, str(REPO))  # tests.azurite, tests.bundles

# Every ROS process a test starts stays on this machine, in this run's own domain.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The committed tiny model bundle (version 0.0.1-test): the real format, not a good model."""
    return DATA / "bundle"


@pytest.fixture(scope="session")
def plates_dir() -> Path:
    """Two quarter-size synthetic plates (1050x752) in the Hades dataset layout."""
    return DATA / "plates"


@pytest.fixture(scope="module")
def plate(plates_dir: Path) -> np.ndarray:
    """A quarter-size synthetic plate (1050x752 rgb8)."""
    first = sorted((plates_dir / "images").glob("*.png"))[0]
    bgr = cv2.imread(str(first), cv2.IMREAD_COLOR)
    assert bgr is not None, f"{first}: cannot be read"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
