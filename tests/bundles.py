"""Model bundles for store and swap tests: other versions of a real exported bundle,
and a version that loads and passes its checksums but fails its golden check."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hades_perception.contract.bundle import MANIFEST, file_entries, write_manifest
from hades_perception.contract.signing import SIGNATURE_FILE

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "hades-seedlings"
# A golden-check latency budget (ms) for tests about outputs, not speed. The default
# budget, 10x the export machine's time, is a timed check: on a CI host with 40 % steal
# a 266 ms golden pass took 3.7 s. The budget itself is tested in test_follower.py
# (a 1 ms budget) and test_pipeline.py (the default's value).
NOT_ABOUT_SPEED_MS = 600_000.0


def new_version(dst: Path, version: str, src: Path = SHIPPED, **changes: Any) -> Path:
    """A copy of a bundle under another version: what re-exporting the same weights gives."""
    shutil.copytree(src, dst)
    (dst / SIGNATURE_FILE).unlink(missing_ok=True)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest.update(version=version, **changes)
    write_manifest(dst, manifest)
    return dst


def failing_golden_version(dst: Path, version: str, src: Path = SHIPPED, **changes: Any) -> Path:
    """A version that loads and whose checksums all match its manifest, but whose golden
    sample disagrees with what its model computes (every expected mask inverted, every
    class confidence moved by 0.5), as when weights change after the golden sample was
    recorded: only the golden check can tell. It edits the golden record, not the ONNX
    graph, so it needs neither onnx nor torch (the ROS tests use it too)."""
    new_version(dst, version, src, **changes)
    golden = dst / "golden"
    for stem in ("expected", "expected.int8"):  # fp32's record, and the int8 variant's when it has one
        if not (golden / f"{stem}.json").is_file():
            continue
        record = json.loads((golden / f"{stem}.json").read_text())
        record["class_confidence"] = {c: (v + 0.5) % 1.0 for c, v in record["class_confidence"].items()}
        with np.load(golden / f"{stem}.npz") as packed:
            inverted = {k: np.invert(packed[k]) if packed[k].dtype == np.uint8 else packed[k] for k in packed.files}
        for name in (f"{stem}.json", f"{stem}.npz"):
            (golden / name).unlink()  # new files, never a write through to the source
        (golden / f"{stem}.json").write_text(json.dumps(record, indent=1))
        np.savez_compressed(golden / f"{stem}.npz", **inverted)
    manifest = json.loads((dst / MANIFEST).read_text())
    manifest["files"] = file_entries(dst)
    write_manifest(dst, manifest)
    return dst
