"""Fixtures shared by the node tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hades_training.data import HadesFolder


@pytest.fixture(scope="module")
def plate(small_plates: Path) -> np.ndarray:
    """A quarter-size synthetic plate (1050x752 rgb8)."""
    return HadesFolder(small_plates)[0].image
