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


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Quarter-size synthetic plates: train/ (4 plates, seed 7) and val/ (2 plates, seed 8)."""
    from hades_training.synth.generate import generate

    out = tmp_path_factory.mktemp("dataset")
    generate(out, count=4, seed=7, split="train", width=1050, height=752)
    generate(out, count=2, seed=8, split="val", width=1050, height=752)
    return out


TINY = [
    "epochs=1",
    "steps_per_epoch=3",
    "batch=2",
    "patch=128",
    "tile=256",
    "tile_overlap=32",
    "width=8",
    "val_max_items=1",
]


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This session's HADES_DATA_DIR: its own MLflow store and caches."""
    d = tmp_path_factory.mktemp("var")
    os.environ["HADES_DATA_DIR"] = str(d)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return d


@pytest.fixture(scope="session")
def tiny_checkpoint(small_dataset: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few steps of real training: a checkpoint with the real format, not a good model."""
    from hades_training.config import load_config
    from hades_training.train import train

    out = tmp_path_factory.mktemp("run")
    return train(load_config(None, TINY), str(small_dataset), out, split="train", val_split="val")


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint: Path, small_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported the real way (ONNX, calibration, golden, manifest)."""
    from hades_training.export import export

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    return export(tiny_checkpoint, out, str(small_dataset), "val", version="0.0.1-test", tensorrt=False, max_items=2)


@pytest.fixture(scope="session")
def monitored_bundle(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint exported with 30 quarter-size training plates (seed 21) beside
    its validation split (seed 22): their input signals are its drift reference."""
    from hades_training.export import export
    from hades_training.synth.generate import generate

    data = tmp_path_factory.mktemp("reference")
    generate(data, count=30, seed=21, split="train", width=1050, height=752)
    generate(data, count=2, seed=22, split="val", width=1050, height=752)
    out = tmp_path_factory.mktemp("bundles") / "monitored"
    return export(tiny_checkpoint, out, str(data), "val", version="0.0.2-test", tensorrt=False, max_items=2)
