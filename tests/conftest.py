"""Shared fixtures: where the repository and ../shared are, and small synthetic plates."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("HADES_SHARED_DIR", REPO.parent / "shared"))
ROOTNAV = SHARED / "data" / "rootnav_osr"

# Every ROS process a test starts stays on this machine, in this run's own domain.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 100)))


@pytest.fixture(scope="session")
def rootnav_dir() -> Path:
    if not (ROOTNAV / "train").is_dir():
        pytest.skip(f"RootNav data not found at {ROOTNAV} (it lives in ../shared, outside the product)")
    return ROOTNAV


@pytest.fixture(scope="session")
def small_plates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four 1050x752 synthetic plates (a quarter of Hades size), seed 7."""
    from hades_training.synth.generate import generate

    out = tmp_path_factory.mktemp("plates")
    generate(out, count=4, seed=7, width=1050, height=752)
    return out
