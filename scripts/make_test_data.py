"""Regenerates the ROS package's committed test data (needs the training package).

The ROS tests run where torch cannot be imported (a robot), so they cannot train a
model or draw plates with the training code: they read what this script wrote.
  test/data/bundle/   a tiny exported model (a few training steps: the real format,
                      not a good model), version 0.0.1-test, with drift reference
                      signals from 22 plates
  test/data/plates/   two quarter-size synthetic plates (1050x752, seed 8) in the Hades
                      dataset layout, ground truth included

Usage: python scripts/make_test_data.py   (from the repository root, in .venv)
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "ros2_ws" / "src" / "hades_perception_ros" / "test" / "data"
TINY = ["epochs=1", "steps_per_epoch=3", "batch=2", "patch=128", "tile=256", "tile_overlap=32", "width=8"]
TINY += ["val_max_items=1"]


def main() -> int:
    from hades_training.config import load_config
    from hades_training.export import export
    from hades_training.synth.generate import generate
    from hades_training.train import train

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # 20 training plates: their input signals are the drift reference (with the 2
        # validation ones), enough frames for a drift test to tell drift from chance.
        generate(work / "ds", count=20, seed=7, split="train", width=1050, height=752)
        generate(work / "ds", count=2, seed=8, split="val", width=1050, height=752)
        ckpt = train(load_config(None, TINY), str(work / "ds"), work / "run", split="train", val_split="val")
        shutil.rmtree(DATA, ignore_errors=True)
        DATA.mkdir(parents=True)
        export(ckpt, DATA / "bundle", str(work / "ds"), "val", version="0.0.1-test", tensorrt=False, max_items=2)
        shutil.copytree(work / "ds" / "val", DATA / "plates")
    print(f"wrote {DATA}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
